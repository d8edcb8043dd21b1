// Package slacktest is the project's fake Slack: a loopback httptest server
// that speaks just enough of Socket Mode and the Web API for the Slack app to
// run against it end to end, with real slack-go clients on the other side.
//
// A test starts one with New, points slack-go at it and drives it from the
// outside:
//
//	srv := slacktest.New(t)
//	api := slack.New(botToken, slack.OptionAPIURL(srv.APIURL()), slack.OptionAppLevelToken(appToken))
//	client := socketmode.New(api)
//	go client.RunContext(ctx)
//	id, err := srv.Push(ctx, srv.AppMention(slacktest.Msg{User: "U1", Channel: "C1", Text: "<@" + slacktest.BotUserID + "> hi"}))
//	ack, err := srv.WaitAck(ctx, id)
//	msgs := srv.Messages("C1")
//
// Socket Mode: apps.connections.open (app-level xapp- token) hands out a
// single-use ticket URL for the /link websocket, which greets every
// connection with a hello, pings it so slack-go's dead-man timer stays
// quiet, delivers pushed envelopes to one connection at a time (round robin,
// as Slack does when several app processes share an app) and records every
// ack with the time it arrived. Disconnect asks every client to reconnect.
// Envelope builders (AppMention, DirectMessage, AppHomeOpened, BlockAction,
// ViewSubmission, SlashCommand) produce the payload shapes Slack sends;
// Envelope.Retry models a redelivery of the same event.
//
// Web API: each method needs a bot xoxb- token, sent as a bearer header or,
// as slack-go does for form posts, a token form field. Every call is recorded
// with its body fields, minus the token, and answered the way Slack answers,
// including the errors the app must cope with (message_not_found,
// expired_trigger_id, 429 with Retry-After when LimitPostMessage is set).
// Each BlockAction and SlashCommand envelope has its own response_url on the
// server; what the app posts there is recorded (Responses).
// Nothing here ever records or prints a token.
package slacktest
