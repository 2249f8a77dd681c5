#include "relay/relay_http.h"

#include <map>
#include <string>

#include "absl/strings/str_cat.h"
#include "api/version.h"

namespace flowscope::relay {

std::string RelayNotReady(const PeerPool& pool) {
  const std::vector<Peer> peers = pool.Snapshot();
  for (const Peer& p : peers) {
    if (p.available) return "";
  }
  return absl::StrCat("no peer connected (", peers.size(), " known)");
}

void CollectRelayMetrics(const PeerPool& pool, const RelayService& service, MetricsWriter& w) {
  const std::vector<Peer> peers = pool.Snapshot();
  int available = 0;
  for (const Peer& p : peers) available += p.available;
  w.Gauge("flowscope_build_info", "flowscope's version");
  w.Sample({{"version", FLOWSCOPE_VERSION}, {"component", "relay"}}, 1);
  w.Gauge("flowscope_ready", "1 when /readyz answers 200");
  w.Sample(available > 0 ? 1 : 0);
  w.Gauge("flowscope_relay_peers", "Peers the relay knows, by state");
  w.Sample({{"state", "connected"}}, available);
  w.Sample({{"state", "unavailable"}}, static_cast<double>(peers.size()) - available);
  w.Gauge("flowscope_relay_peer_up", "1 while the relay is connected to the peer");
  for (const Peer& p : peers) {
    w.Sample({{"peer", p.address}, {"name", p.name}}, p.available ? 1 : 0);
  }
  w.Gauge("flowscope_relay_flow_streams", "Client flow streams open");
  w.Sample(service.open_streams());
  w.Gauge("flowscope_relay_queued_messages", "Messages waiting to be written to clients");
  w.Sample(static_cast<double>(service.queued_messages()));
  w.Gauge("flowscope_relay_follow_merge_lag_seconds",
          "Follow streams: how far the merged stream's promise trails the clock (the largest "
          "among open streams)");
  w.Sample(absl::ToDoubleSeconds(service.max_merge_lag()));
  w.Counter("flowscope_relay_dropped_for_slow_clients_total",
            "Follow responses dropped because a client did not read them in time (reported "
            "in its stream as lost events)");
  w.Sample(static_cast<double>(service.dropped_for_slow_clients()));
}

absl::StatusOr<std::unique_ptr<HttpServer>> StartRelayHttp(HttpServerOptions options,
                                                           const PeerPool& pool,
                                                           const RelayService& service) {
  std::map<std::string, HttpHandler> routes;
  routes["/healthz"] = [](const HttpRequest&) { return HttpResponse{.body = "ok\n"}; };
  routes["/readyz"] = [&pool](const HttpRequest&) {
    const std::string why = RelayNotReady(pool);
    return why.empty() ? HttpResponse{.body = "ready\n"}
                       : HttpResponse{.status = 503, .body = why + "\n"};
  };
  routes["/metrics"] = [&pool, &service](const HttpRequest& r) {
    const MetricsFormat format = NegotiateMetricsFormat(r.accept);
    MetricsWriter w(format);
    CollectRelayMetrics(pool, service, w);
    return HttpResponse{.content_type = std::string(MetricsContentType(format)),
                        .body = std::move(w).Finish()};
  };
  return HttpServer::Start(std::move(options), std::move(routes));
}

}  // namespace flowscope::relay
