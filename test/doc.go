// Package test holds ittybit's system tests: the layering rules of the
// design checked with go list, and multi-process tests of real `ittybit
// server`, `ittybit agent` and `ittybit dev` processes on loopback
// (TestMain builds the binary once): a three-node cluster through the
// whole task API (TestCluster), the API docs' curl, Python and JavaScript
// snippets (TestSeedSnippets), a fleet with S3 through the pipeline
// (TestPipeline); hostile input (TestSSRFSubmission, TestSSRFAtFetch,
// TestHostileMedia); and faults: the leader SIGKILLed under write load
// (TestLeaderKill), the leader cut off from the others (TestPartition), an
// agent or an encoder plugin SIGKILLed mid-encode (TestAgentKilledMidEncode,
// TestPluginKilledMidEncode), an agent's disk full (TestWorkDirFull),
// assignments and reports lost on the way (TestFleetNothingStuck, 200
// simulated agents of package fleetsim on a lossy link;
// TestLostAssignmentAndReport, real agents behind a proxy), each with a
// full restart where it applies. `make reliability` writes their figures
// into RELIABILITY.md.
package test
