// Package webhooks is the delivery side of outbound webhooks, per the
// Standard Webhooks specification (v1.0.0): secrets and signatures
// (webhook-id, webhook-timestamp, webhook-signature: "v1," and the base64
// HMAC-SHA256 of id.timestamp.body), the retry schedule and what each
// answer means for it (Svix's schedule and rules), and a sender that
// reaches only public addresses (every address a name resolves to is
// checked as the connection is made, so a DNS answer that changes after a
// check cannot pass), follows no redirect and reads at most 20 kB of an
// answer.
//
// It decides nothing about the replicated state: the leader asks it for
// the next attempt's time (with the jitter drawn before the entry that
// records it is written, so applying the log stays deterministic), and
// records what a Sender reports.
package webhooks
