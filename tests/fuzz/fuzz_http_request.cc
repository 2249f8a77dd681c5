// Arbitrary bytes as an HTTP request to the daemons' HTTP server (a real one on loopback, with
// the /metrics, /healthz and /readyz routes' shapes): whatever arrives, the server answers or
// closes, and goes on serving. The sanitizers watch the server's request handling.

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <string>

#include "api/http_server.h"
#include "api/metrics.h"
#include "tests/testing/http_client.h"

namespace {

flowscope::HttpServer* Server() {
  static std::unique_ptr<flowscope::HttpServer> server = [] {
    std::map<std::string, flowscope::HttpHandler> routes;
    routes["/healthz"] = [](const flowscope::HttpRequest&) {
      return flowscope::HttpResponse{.body = "ok\n"};
    };
    routes["/metrics"] = [](const flowscope::HttpRequest& r) {
      const flowscope::MetricsFormat f = flowscope::NegotiateMetricsFormat(r.accept);
      flowscope::MetricsWriter w(f);
      w.Counter("fuzz_requests_total", "requests");
      w.Sample({{"path", r.path}, {"query", r.query}}, 1);
      return flowscope::HttpResponse{.content_type = std::string(flowscope::MetricsContentType(f)),
                                     .body = std::move(w).Finish()};
    };
    auto s = flowscope::HttpServer::Start({.address = "127.0.0.1:0",
                                           .read_timeout = absl::Seconds(2),
                                           .idle_timeout = absl::Seconds(2)},
                                          std::move(routes));
    if (!s.ok()) abort();
    return std::move(s).value();
  }();
  return server.get();
}

// Sends `bytes`, closes the sending side and reads until the server closes. Each exchange comes
// from the next source address in 127.0.0.0/8, so the thousands of client sockets left in
// TIME_WAIT by a run never exhaust the ephemeral ports. Aborts, naming the error, if the server
// cannot be reached.
void Exchange(uint16_t port, const uint8_t* bytes, size_t size) {
  static uint32_t n = 0;
  const uint32_t source = (127u << 24) | (1u + n++ % 0xfffffdu);
  flowscope::testing::HttpClient c(port, source);
  if (!c.connected()) {
    fprintf(stderr, "fuzz_http_request: cannot reach the server on port %u: %s\n", port,
            strerror(c.connect_errno()));
    abort();
  }
  if (size > 0) (void)c.Send(std::string(reinterpret_cast<const char*>(bytes), size));
  c.CloseSending();
  (void)c.ReadAll();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  flowscope::HttpServer* server = Server();
  Exchange(server->port(), data, size);
  // Still serving.
  static const char kHealth[] = "GET /healthz HTTP/1.1\r\nHost: f\r\n\r\n";
  static uint64_t n = 0;
  if (++n % 64 == 0) {
    Exchange(server->port(), reinterpret_cast<const uint8_t*>(kHealth), strlen(kHealth));
  }
  return 0;
}
