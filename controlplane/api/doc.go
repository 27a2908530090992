// Package api holds the wire types of ittybit's REST API, shared by the
// control plane's handlers, the Go client, the agent and the CLI: the task
// and step objects exactly in the shape of the public API, and the error
// body. It imports only the standard library and encoders.
package api
