// Arbitrary bytes as an HTTP request to the daemons' HTTP server (a real one on loopback, with
// the /metrics, /healthz and /readyz routes' shapes): whatever arrives, the server answers or
// closes, and goes on serving. The sanitizers watch the server's request handling.

#include <cstdint>
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

// Sends `bytes`, closes the sending side and reads until the server closes; false if the
// server could not be reached.
bool Exchange(uint16_t port, const uint8_t* bytes, size_t size) {
  flowscope::testing::HttpClient c(port);
  if (!c.connected()) return false;
  if (size > 0) (void)c.Send(std::string(reinterpret_cast<const char*>(bytes), size));
  c.CloseSending();
  (void)c.ReadAll();
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  flowscope::HttpServer* server = Server();
  if (!Exchange(server->port(), data, size)) abort();
  // Still serving.
  static const char kHealth[] = "GET /healthz HTTP/1.1\r\nHost: f\r\n\r\n";
  static uint64_t n = 0;
  if (++n % 64 == 0 &&
      !Exchange(server->port(), reinterpret_cast<const uint8_t*>(kHealth), strlen(kHealth))) {
    abort();
  }
  return 0;
}
