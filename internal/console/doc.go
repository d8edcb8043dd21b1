// Package console is AgentHub's terminal adapter: the broker's second
// renderer, beside the Slack app, in the way Hubot's shell adapter stands
// beside its chat adapters. It reads one line at a time, interactive or
// piped, and handles each line to completion before reading the next.
//
// A line that starts with the name of one of Options.Others ("@bob once")
// is typed by that person instead: the demo uses it to show that a click
// by anyone but the request's owner is refused. What such a line gets back
// does not change what is offered to the person at the keyboard.
//
// A line is, in this order of precedence:
//
//   - a command: "/agenthub help | connect <service> | grants |
//     revoke <service> | revoke all | pending | audit [n] | whoami";
//   - an answer to the last approval shown: a choice's number, key or label
//     ("1", "once", "Approve once"), which goes to broker.Decide;
//   - a 6-digit code while a step-up is waiting, which goes to
//     broker.StepUp;
//   - anything else: a message to the bot (broker.Handle).
//
// Outputs are printed as readable text with numbered choices, or with
// Options.JSON as one JSON object per line (kind, text, choices,
// request_id, and in the demo demo_code for step_up outputs), so scripts and
// tests can drive the console exactly as a person would.
//
// In the demo the console also plays the person's phone: Options.DemoCode
// returns the authenticator's current code, shown beside every step-up
// prompt. Outside the demo it is nil and nothing of the kind is shown.
package console
