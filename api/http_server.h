// HttpServer: the daemons' small HTTP/1.1 server (Boost.Beast) for /metrics, /healthz and
// /readyz — its own io_context and thread, GET and HEAD only, bounded and timed out:
//
//   - a request's header may be at most max_header_bytes (431 beyond), its body max_body_bytes
//     (413); anything Beast cannot parse gets 400 naming the problem; other methods get 405;
//     unknown paths 404. The connection is closed after any error answer.
//   - a request must arrive within read_timeout of its first byte (408, then closed), and a
//     kept-alive connection is closed after idle_timeout without one (slow or idle clients);
//   - at most max_connections are served at once: one more is answered 503 and closed;
//   - a failed accept (no file descriptors left) is retried after a pause, never given up.
//
// TLS with the gRPC listeners' certificate flags when a certificate is given.
//
//   auto server = HttpServer::Start({.address = "127.0.0.1:9965"},
//                                   {{"/healthz", [](const HttpRequest&) {
//                                      return HttpResponse{.body = "ok\n"};
//                                    }}});
//   ...
//   (*server)->Shutdown();  // or let it go: the destructor shuts down
//
// Thread-safety: handlers run on the server's thread, one request at a time; everything else
// from any thread.
#ifndef FLOWSCOPE_API_HTTP_SERVER_H_
#define FLOWSCOPE_API_HTTP_SERVER_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "api/tls.h"

namespace flowscope {

struct HttpRequest {
  std::string method;  // "GET" or "HEAD" (nothing else reaches a handler)
  std::string path;    // the target without its query
  std::string query;   // after '?', if any
  std::string accept;  // the Accept header
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body = {};
  std::vector<std::pair<std::string, std::string>> headers = {};  // more header fields
};

using HttpHandler = std::function<HttpResponse(const HttpRequest&)>;

struct HttpServerOptions {
  // "host:port", "[v6]:port" or ":port" (every interface, IPv6 and IPv4); port 0 picks one.
  std::string address = {};
  TlsServerFiles tls = {};  // a certificate and key: HTTPS
  size_t max_header_bytes = 8 * 1024;
  size_t max_body_bytes = 64 * 1024;
  absl::Duration read_timeout = absl::Seconds(10);
  absl::Duration idle_timeout = absl::Seconds(60);
  int max_connections = 256;
};

class HttpServer {
 public:
  struct Stats {
    uint64_t requests = 0;      // answered by a handler (any status it chose)
    uint64_t bad_requests = 0;  // answered 4xx by the server itself (parse, size, method, path)
    uint64_t timeouts = 0;      // connections closed for a request that did not arrive in time
    uint64_t refused = 0;       // connections answered 503 beyond max_connections
    uint64_t accept_errors = 0;
    int open_connections = 0;
  };

  // Binds (an error naming the address if it cannot: in use, not permitted, not an address),
  // then serves on its own thread.
  static absl::StatusOr<std::unique_ptr<HttpServer>> Start(
      HttpServerOptions options, std::map<std::string, HttpHandler> routes);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Stops accepting, closes every connection and joins the thread. Idempotent.
  void Shutdown();

  std::string bound() const { return bound_; }  // "127.0.0.1:9965", "[::]:9965"
  uint16_t port() const { return port_; }
  bool tls() const { return tls_; }
  Stats stats() const;

  struct Impl;

 private:
  HttpServer() = default;
  std::unique_ptr<Impl> impl_;
  std::string bound_;
  uint16_t port_ = 0;
  bool tls_ = false;
};

// The reason phrase of a status code ("Not Found"), as the server sends it.
std::string HttpReason(int status);

}  // namespace flowscope

#endif  // FLOWSCOPE_API_HTTP_SERVER_H_
