// Where the CLI connects and how: the server address and timeouts, TLS and basic-auth settings, and
// a dial that reports why a server cannot be reached as soon as it is known (no such socket,
// connection refused), as Hubble does, instead of waiting out the timeout. Called from main's
// thread.
#ifndef FLOWSCOPE_CMD_CLI_CONNECTION_H_
#define FLOWSCOPE_CMD_CLI_CONNECTION_H_

#include <grpcpp/grpcpp.h>

#include <memory>
#include <ostream>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "api/tls.h"

namespace flowscope::cli {

struct ServerOptions {
  std::string server = "localhost:4245";  // host:port, tls://host:port or unix:///path
  absl::Duration dial_timeout = absl::Seconds(5);
  absl::Duration request_timeout = absl::Seconds(12);
  bool tls = false;  // --tls (a tls:// server turns it on too)
  TlsClientOptions tls_options;
  std::string basic_auth_username;  // sent as "authorization: Basic …" on every call
  std::string basic_auth_password;
};

// Checks the TLS and basic-auth settings fit together (basic auth only over TLS; TLS files only
// with TLS; TLS only to TCP targets) and that the TLS files can be read.
absl::Status CheckConnectionSettings(const ServerOptions& server);

// The server and timeouts as the flags (or FLOWSCOPE_* or the config file, see config.h) give
// them; "" keeps the default. A timeout that is not a positive Go duration is an error.
absl::StatusOr<ServerOptions> ResolveServer(const std::string& server, const std::string& timeout,
                                            const std::string& request_timeout);

// A connected channel. Unavailable naming the target and the cause: at once when the
// connection fails (the cause read from the system: "connect: connection refused"), or when
// no connection is made within the dial timeout.
absl::StatusOr<std::shared_ptr<grpc::Channel>> Dial(const ServerOptions& server);

// Basic auth, when configured, on every call.
void Authorize(grpc::ClientContext* ctx, const ServerOptions& server);

void SetDeadline(grpc::ClientContext* ctx, absl::Duration d);

// As Hubble's CLI: warns on `err` when the server's or relay's version header names a newer
// minor version than this CLI's. Call once the call's headers have arrived (after a message
// was read, or the call finished).
void WarnIfServerIsNewer(const grpc::ClientContext& ctx, std::ostream& err);

// Why a plain connection to a gRPC `target` ("host:port", "unix:///path", "dns:///host:port")
// cannot be made, in Go's words ("dial unix /x: connect: no such file or directory"), or ""
// when it can be made within `timeout`.
std::string ConnectProblem(const std::string& target, absl::Duration timeout);

}  // namespace flowscope::cli

#endif  // FLOWSCOPE_CMD_CLI_CONNECTION_H_
