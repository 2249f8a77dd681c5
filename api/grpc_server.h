// GrpcServer: serves flowscope's services (plus the standard gRPC health service for "" and
// "hubble.server.Observer", and server reflection) on a unix socket and/or a TCP address, for
// the observer and the relay. Plaintext listeners accept through flowscope's Listener (it
// survives EMFILE and binds exclusively); a TLS listener is gRPC's own. A stale socket left by a
// crash is replaced; a live one (another observer answering on it) is not. Start/Shutdown from one
// thread.
#ifndef FLOWSCOPE_API_GRPC_SERVER_H_
#define FLOWSCOPE_API_GRPC_SERVER_H_

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "api/listener.h"

namespace flowscope {

struct ListenOptions {
  ListenOptions(std::string unix_socket_path = "", std::string tcp = "",
                std::shared_ptr<grpc::ServerCredentials> tcp_tls = nullptr)
      : unix_socket(std::move(unix_socket_path)),
        tcp_address(std::move(tcp)),
        tcp_credentials(std::move(tcp_tls)) {}

  std::string unix_socket;  // "" for none
  std::string tcp_address;  // "" for none; "127.0.0.1:0" picks a port
  // TLS for the TCP listener (see api/tls.h); null: plaintext. The unix socket is protected by
  // its file permissions and stays plaintext, as Hubble's is.
  std::shared_ptr<grpc::ServerCredentials> tcp_credentials;
  // Sent in the initial metadata of every call (the server's version header).
  std::vector<std::pair<std::string, std::string>> headers;
};

class GrpcServer {
 public:
  // `services` must outlive the server.
  static absl::StatusOr<std::unique_ptr<GrpcServer>> Start(
      const std::vector<grpc::Service*>& services, const ListenOptions& options);
  ~GrpcServer();

  // Stops accepting calls, cancels streams still open after `grace`, removes the socket.
  void Shutdown(absl::Duration grace);

  int tcp_port() const { return tcp_port_; }
  // What is bound, for the log: "unix:///var/run/flowscope/observer.sock and [::]:4244".
  std::string bound() const;
  // Connections the plaintext listeners accepted and refused (at the open-file limit).
  ListenerStats listener_stats() const;

  // Health: SERVING (the default once started) or NOT_SERVING, for "" and
  // "hubble.server.Observer". Any thread.
  void SetServing(bool serving);
  // A target for clients: "unix:///path" or "host:port".
  std::string target() const;

 private:
  GrpcServer() = default;
  std::vector<std::unique_ptr<Listener>> listeners_;  // stopped by Shutdown() before server_
  std::unique_ptr<grpc::Server> server_;
  ListenOptions options_;
  int tcp_port_ = 0;
  std::string tcp_bound_;
  bool shut_down_ = false;
};

// Replaces a stale unix socket at `path` (connection refused) and creates its directory;
// AlreadyExists if something answers there, FailedPrecondition if it is not a socket.
absl::Status PrepareUnixSocket(const std::string& path);

}  // namespace flowscope

#endif  // FLOWSCOPE_API_GRPC_SERVER_H_
