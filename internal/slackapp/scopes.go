package slackapp

// What the app asks of a workspace, and nothing more; manifest.yaml at the
// repository's root declares the same, and a test holds the two together.

// Command is the app's slash command.
const Command = "/agenthub"

// BotEvents are the Events API events the app subscribes to.
var BotEvents = []string{"app_mention", "message.im", "app_home_opened", "tokens_revoked", "app_uninstalled", "agent_session_stopped"}

// MethodScopes are the Web API methods the app calls, each with the bot
// scope it needs ("" for none beyond the bot token). BotScopes is exactly
// the set of these scopes plus those the events and the command need.
var MethodScopes = map[string]string{
	"auth.test":                 "",
	"apps.connections.open":     "", // the app-level token's connections:write
	"conversations.open":        "im:write",
	"chat.postMessage":          "chat:write",
	"chat.update":               "chat:write",
	"chat.postEphemeral":        "chat:write",
	"views.publish":             "",
	"views.open":                "",
	"users.info":                "users:read", // whether someone is a guest or from elsewhere, for the policy
	"agents.sessions.setStatus": "chat:write", // the agent session's status follows the work
	"chat.startStream":          "chat:write", // progress, streamed into the thread
	"chat.appendStream":         "chat:write",
	"chat.stopStream":           "chat:write",
}

// EventScopes are the bot scopes each event subscription needs.
var EventScopes = map[string]string{
	"app_mention":           "app_mentions:read",
	"message.im":            "im:history",
	"app_home_opened":       "",
	"tokens_revoked":        "",
	"app_uninstalled":       "",
	"agent_session_stopped": "", // Stop on an agent session
}

// FieldScopes are bot scopes that a method needs for one field of its
// answer, each with what it is for.
var FieldScopes = map[string]string{
	// users.info's profile.email: /agenthub link links an identity only
	// when the identity provider's verified email is the Slack user's.
	"users:read.email": "users.info",
}

// BotScopes are the bot token's scopes.
var BotScopes = []string{"app_mentions:read", "chat:write", "commands", "im:history", "im:write", "users:read", "users:read.email"}
