// A small Kubernetes API client: GETs and watches over HTTPS (Boost.Beast + OpenSSL), with the
// connection settings of a pod's service account (InClusterConfig) or of a kubeconfig file
// (LoadKubeconfig). It speaks HTTP/1.1 and returns bodies as text; what they mean is
// kube_source's business.
//
//   FLOWSCOPE_ASSIGN_OR_RETURN(KubeConfig config, LoadKubeconfig("~/.kube/config"));
//   FLOWSCOPE_ASSIGN_OR_RETURN(auto client, KubeClient::Create(config));
//   auto list = client->Get("/api/v1/pods?limit=500", absl::Seconds(30));
//   client->Watch("/api/v1/pods?watch=1&resourceVersion=123", absl::Minutes(6),
//                 [](absl::string_view line) { ...; return true; });
//
// The bearer token is re-read from its file on every request, so a projected service-account
// token that the kubelet rotates is picked up. Thread-safety: requests may run on several
// threads at once (each has its own connection); Shutdown() from any thread ends them.
#ifndef FLOWSCOPE_OBSERVER_KUBE_CLIENT_H_
#define FLOWSCOPE_OBSERVER_KUBE_CLIENT_H_

#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace flowscope::observer {

struct KubeConfig {
  std::string server;  // https://host[:port] (http:// for plain HTTP)
  std::string ca_file = {};
  std::string ca_pem = {};
  bool insecure_skip_tls_verify = false;
  std::string tls_server_name = {};  // overrides the host for verification and SNI
  std::string token = {};
  std::string token_file = {};  // re-read on every request
  std::string client_cert_file = {};
  std::string client_cert_pem = {};
  std::string client_key_file = {};
  std::string client_key_pem = {};
  std::string source = {};  // where it came from, for messages
};

// The pod's service account: KUBERNETES_SERVICE_HOST/PORT and <sa_dir>/{token,ca.crt}.
absl::StatusOr<KubeConfig> InClusterConfig(
    const std::string& sa_dir = "/var/run/secrets/kubernetes.io/serviceaccount");

// A kubeconfig file's current context (or `context`). Relative file paths in it are relative to
// the file's directory; *-data fields are base64 PEM. Exec and auth-provider plugins are not
// supported (a clear error).
absl::StatusOr<KubeConfig> LoadKubeconfig(const std::string& path, const std::string& context = "");

class KubeClient {
 public:
  struct Response {
    int status = 0;
    std::string body;
  };

  // Checks the settings (URL, certificate files) and builds the TLS context.
  static absl::StatusOr<std::unique_ptr<KubeClient>> Create(const KubeConfig& config);
  ~KubeClient();
  KubeClient(const KubeClient&) = delete;
  KubeClient& operator=(const KubeClient&) = delete;

  // GET `target` (path and query); the whole answer, any status. An error only when no answer
  // came (connection, TLS, timeout).
  absl::StatusOr<Response> Get(const std::string& target, absl::Duration timeout);

  // GET a watch: `on_line` gets each line of the body as it arrives (return false to stop).
  // Returns the status and, unless it is 200, the body; for 200, once the server ends the stream
  // or on_line stops. An error when the connection fails, drops mid-stream, or is silent for
  // `idle_timeout`.
  absl::StatusOr<Response> Watch(const std::string& target, absl::Duration idle_timeout,
                                 const std::function<bool(absl::string_view line)>& on_line);

  // Ends the requests in progress and makes later ones fail at once.
  void Shutdown();

  const KubeConfig& config() const { return config_; }

  class Connection;

 private:
  explicit KubeClient(KubeConfig config);
  absl::StatusOr<std::string> Token() const;
  absl::StatusOr<std::unique_ptr<Connection>> Connect(absl::Duration timeout);
  bool Track(int fd);
  void Untrack(int fd);

  const KubeConfig config_;
  std::string host_;
  std::string port_;
  bool tls_ = true;
  struct TlsContext;
  std::unique_ptr<TlsContext> ssl_;
  std::mutex mu_;
  bool shutdown_ = false;
  std::set<int> fds_;
};

}  // namespace flowscope::observer

#endif  // FLOWSCOPE_OBSERVER_KUBE_CLIENT_H_
