// TLS for flowscope's gRPC connections, from PEM files: server credentials for the observer's
// and relay's TCP listeners (with client CAs: mutual TLS, client certificates required and
// verified), and client credentials for the CLI and for the relay's connections to observers.
// Every error names the file or the setting at fault. Pure functions; any thread.
//
//   auto creds = ServerTlsCredentials({.cert_file = "server.crt", .key_file = "server.key"});
//   auto tls = ClientTlsCredentials({.ca_files = {"ca.crt"}});
//   auto channel = grpc::CreateCustomChannel(target, tls->credentials, tls->args);
#ifndef FLOWSCOPE_API_TLS_H_
#define FLOWSCOPE_API_TLS_H_

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace flowscope {

struct TlsServerFiles {
  std::string cert_file;                          // PEM certificate chain
  std::string key_file;                           // PEM private key
  std::vector<std::string> client_ca_files = {};  // non-empty: require and verify client certs

  bool enabled() const { return !cert_file.empty() || !key_file.empty(); }
};

// Credentials for a TLS listener; an error if a file is missing or unreadable, or only one of
// the certificate and the key is given.
absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> ServerTlsCredentials(
    const TlsServerFiles& files);

struct TlsClientOptions {
  std::vector<std::string> ca_files;  // trusted CAs; empty: the system's roots
  std::string cert_file;              // client certificate for mutual TLS (with key_file)
  std::string key_file;
  std::string server_name;      // the name to verify the server's certificate against, if not
                                // the target's host
  bool allow_insecure = false;  // do not verify the server's certificate at all
};

// Client credentials and the channel arguments they need (the server name override).
struct ClientTls {
  std::shared_ptr<grpc::ChannelCredentials> credentials;
  grpc::ChannelArguments args;
};
absl::StatusOr<ClientTls> ClientTlsCredentials(const TlsClientOptions& options);

// The whole contents of a file, or an error naming it and `what` it was meant to be.
absl::StatusOr<std::string> ReadPemFile(const std::string& path, const std::string& what);

}  // namespace flowscope

#endif  // FLOWSCOPE_API_TLS_H_
