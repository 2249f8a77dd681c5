// The relay's HTTP endpoints: /healthz (alive), /readyz (at least one peer connected) and
// /metrics — peers by state and each peer's state, client streams, what slow clients lost.
//
//   auto http = StartRelayHttp({.address = ":9966"}, pool, service);
#ifndef FLOWSCOPE_RELAY_RELAY_HTTP_H_
#define FLOWSCOPE_RELAY_RELAY_HTTP_H_

#include <memory>

#include "absl/status/statusor.h"
#include "api/http_server.h"
#include "api/metrics.h"
#include "relay/peer_pool.h"
#include "relay/relay_service.h"

namespace flowscope::relay {

// Why the relay is not ready ("" when it is).
std::string RelayNotReady(const PeerPool& pool);

void CollectRelayMetrics(const PeerPool& pool, const RelayService& service, MetricsWriter& w);

// The pool and the service must outlive the server.
absl::StatusOr<std::unique_ptr<HttpServer>> StartRelayHttp(HttpServerOptions options,
                                                           const PeerPool& pool,
                                                           const RelayService& service);

}  // namespace flowscope::relay

#endif  // FLOWSCOPE_RELAY_RELAY_HTTP_H_
