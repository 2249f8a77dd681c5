// The relay's unary answers: ServerStatus, GetNodes, GetNamespaces and flowscope's
// GetHistoryStatus, each one fan-out to the available peers (relay/fan_out.h) with one deadline.
#include <algorithm>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "relay/fan_out.h"
#include "relay/relay_service.h"

namespace flowscope::relay {

namespace {

std::vector<const Peer*> Available(const std::vector<Peer>& peers) {
  std::vector<const Peer*> out;
  for (const Peer& p : peers) {
    if (p.available) out.push_back(&p);
  }
  return out;
}

using StatusAnswers = std::vector<PeerAnswer<::observer::ServerStatusResponse>>;

// A peer that is itself a relay says how many nodes it reaches (observers leave it unset).
bool IsRelay(const ::observer::ServerStatusResponse& s) { return s.has_num_connected_nodes(); }

struct StatusAnswer {
  grpc::Status status;
  ::observer::ServerStatusResponse response;
};

// The node list: each peer as a node — or, for a relay below this one that listed its nodes,
// those nodes, as it reported them.
void ListNodes(const std::vector<Peer>& peers, const std::map<std::string, StatusAnswer>& statuses,
               const std::map<std::string, const ::observer::GetNodesResponse*>& below,
               ::observer::GetNodesResponse* resp) {
  for (const Peer& p : peers) {
    if (auto b = below.find(p.address); b != below.end()) {
      for (const ::observer::Node& n : b->second->nodes()) *resp->add_nodes() = n;
      continue;
    }
    ::observer::Node* n = resp->add_nodes();
    n->set_name(p.name);
    n->set_address(p.address);
    n->mutable_tls()->set_enabled(p.tls);
    if (p.tls) n->mutable_tls()->set_server_name(p.tls_server_name);
    auto it = statuses.find(p.address);
    if (it == statuses.end()) {
      n->set_state(::relay::NODE_UNAVAILABLE);
      continue;
    }
    const grpc::Status& st = it->second.status;
    if (!st.ok()) {
      // Unreachable, or no answer in time: unavailable; an answer that is an error: an error.
      const bool silent = st.error_code() == grpc::StatusCode::UNAVAILABLE ||
                          st.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED ||
                          st.error_code() == grpc::StatusCode::CANCELLED;
      n->set_state(silent ? ::relay::NODE_UNAVAILABLE : ::relay::NODE_ERROR);
      continue;
    }
    const ::observer::ServerStatusResponse& s = it->second.response;
    n->set_state(::relay::NODE_CONNECTED);
    n->set_version(s.version());
    n->set_uptime_ns(s.uptime_ns());
    n->set_num_flows(s.num_flows());
    n->set_max_flows(s.max_flows());
    n->set_seen_flows(s.seen_flows());
  }
}

// ServerStatus of each peer, at once, within `timeout`; then `finish(answers)`.
void StatusOf(const std::vector<const Peer*>& peers, absl::Duration timeout,
              std::function<void(StatusAnswers&)> finish) {
  static const ::observer::ServerStatusRequest kRequest;
  FanOut<::observer::ServerStatusResponse>(
      peers, timeout,
      [](const Peer& p, grpc::ClientContext* ctx, ::observer::ServerStatusResponse* resp,
         std::function<void(grpc::Status)> done) -> std::shared_ptr<void> {
        std::shared_ptr<::observer::Observer::Stub> stub = ::observer::Observer::NewStub(p.channel);
        stub->async()->ServerStatus(ctx, &kRequest, resp, std::move(done));
        return stub;
      },
      std::move(finish));
}

}  // namespace

absl::Duration RelayService::unary_timeout() const {
  // A stopped peer holds a status or list answer up for the peer timeout at most.
  return std::min(options_.request_timeout, options_.peer_timeout);
}

grpc::ServerUnaryReactor* RelayService::ServerStatus(grpc::CallbackServerContext* ctx,
                                                     const ::observer::ServerStatusRequest*,
                                                     ::observer::ServerStatusResponse* resp) {
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  if (std::optional<grpc::Status> refused = Refusal()) {
    reactor->Finish(*std::move(refused));
    return reactor;
  }
  const std::vector<Peer> peers = pool_.Snapshot();
  std::vector<std::string> unavailable;
  for (const Peer& p : peers) {
    if (!p.available) unavailable.push_back(p.name);
  }
  StatusOf(Available(peers), unary_timeout(),
           [reactor, resp, unavailable](StatusAnswers& answers) mutable {
             uint32_t connected = 0;
             uint32_t unavailable_count = static_cast<uint32_t>(unavailable.size());
             for (const auto& a : answers) {
               if (!a.status.ok()) {
                 // Reachable but not answering (stopped, overloaded): not connected now.
                 unavailable.push_back(a.peer->name);
                 ++unavailable_count;
                 continue;
               }
               const ::observer::ServerStatusResponse& s = a.response;
               if (IsRelay(s)) {
                 // A relay below this one: its nodes count, not the relay.
                 connected += s.num_connected_nodes().value();
                 unavailable_count += s.num_unavailable_nodes().value();
                 for (const std::string& n : s.unavailable_nodes()) unavailable.push_back(n);
               } else {
                 ++connected;
               }
               resp->set_num_flows(resp->num_flows() + s.num_flows());
               resp->set_max_flows(resp->max_flows() + s.max_flows());
               resp->set_seen_flows(resp->seen_flows() + s.seen_flows());
               resp->set_uptime_ns(std::max(resp->uptime_ns(), s.uptime_ns()));
               resp->set_flows_rate(resp->flows_rate() + s.flows_rate());
             }
             std::sort(unavailable.begin(), unavailable.end());
             resp->mutable_num_connected_nodes()->set_value(connected);
             resp->mutable_num_unavailable_nodes()->set_value(unavailable_count);
             for (size_t i = 0; i < unavailable.size() && i < 10; ++i) {
               resp->add_unavailable_nodes(unavailable[i]);
             }
             resp->set_version(std::string(kRelayVersion));
             reactor->Finish(grpc::Status::OK);
           });
  return reactor;
}

grpc::ServerUnaryReactor* RelayService::GetNodes(grpc::CallbackServerContext* ctx,
                                                 const ::observer::GetNodesRequest*,
                                                 ::observer::GetNodesResponse* resp) {
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  if (std::optional<grpc::Status> refused = Refusal()) {
    reactor->Finish(*std::move(refused));
    return reactor;
  }
  const std::vector<Peer> peers = pool_.Snapshot();
  const absl::Time deadline = absl::Now() + unary_timeout();
  StatusOf(Available(peers), unary_timeout(),
           [reactor, resp, peers, deadline](StatusAnswers& answers) {
             // Relays below this one list their own nodes: asked next, within what is left of
             // the one deadline.
             auto statuses = std::make_shared<std::map<std::string, StatusAnswer>>();
             std::vector<const Peer*> relays;
             for (const auto& a : answers) {
               (*statuses)[a.peer->address] = {a.status, a.response};
               if (a.status.ok() && IsRelay(a.response)) relays.push_back(a.peer);
             }
             const absl::Duration left = std::max(absl::ZeroDuration(), deadline - absl::Now());
             FanOut<::observer::GetNodesResponse>(
                 relays, left,
                 [](const Peer& p, grpc::ClientContext* c, ::observer::GetNodesResponse* r,
                    std::function<void(grpc::Status)> done) -> std::shared_ptr<void> {
                   static const ::observer::GetNodesRequest kRequest;
                   std::shared_ptr<::observer::Observer::Stub> stub =
                       ::observer::Observer::NewStub(p.channel);
                   stub->async()->GetNodes(c, &kRequest, r, std::move(done));
                   return stub;
                 },
                 [reactor, resp, peers,
                  statuses](std::vector<PeerAnswer<::observer::GetNodesResponse>>& lists) {
                   std::map<std::string, const ::observer::GetNodesResponse*> below;
                   for (const auto& l : lists) {
                     if (l.status.ok()) below[l.peer->address] = &l.response;
                   }
                   ListNodes(peers, *statuses, below, resp);
                   reactor->Finish(grpc::Status::OK);
                 });
           });
  return reactor;
}

grpc::ServerUnaryReactor* RelayHistoryService::GetHistoryStatus(
    grpc::CallbackServerContext* ctx, const ::flowscope::v1::HistoryStatusRequest*,
    ::flowscope::v1::HistoryStatusResponse* resp) {
  static const ::flowscope::v1::HistoryStatusRequest kRequest;
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  if (std::optional<grpc::Status> refused = relay_->Refusal()) {
    reactor->Finish(*std::move(refused));
    return reactor;
  }
  FanOut<::flowscope::v1::HistoryStatusResponse>(
      Available(relay_->pool().Snapshot()), relay_->options().request_timeout,
      [](const Peer& p, grpc::ClientContext* c, ::flowscope::v1::HistoryStatusResponse* r,
         std::function<void(grpc::Status)> done) -> std::shared_ptr<void> {
        std::shared_ptr<::flowscope::v1::History::Stub> stub =
            ::flowscope::v1::History::NewStub(p.channel);
        stub->async()->GetHistoryStatus(c, &kRequest, r, std::move(done));
        return stub;
      },
      [reactor, resp](std::vector<PeerAnswer<::flowscope::v1::HistoryStatusResponse>>& answers) {
        for (const auto& a : answers) {
          // A Hubble peer has no history service: it has no nodes to report.
          if (!a.status.ok()) continue;
          for (const auto& n : a.response.nodes()) *resp->add_nodes() = n;
        }
        reactor->Finish(grpc::Status::OK);
      });
  return reactor;
}

grpc::ServerUnaryReactor* RelayService::GetNamespaces(grpc::CallbackServerContext* ctx,
                                                      const ::observer::GetNamespacesRequest*,
                                                      ::observer::GetNamespacesResponse* resp) {
  static const ::observer::GetNamespacesRequest kRequest;
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  if (std::optional<grpc::Status> refused = Refusal()) {
    reactor->Finish(*std::move(refused));
    return reactor;
  }
  FanOut<::observer::GetNamespacesResponse>(
      Available(pool_.Snapshot()), unary_timeout(),
      [](const Peer& p, grpc::ClientContext* c, ::observer::GetNamespacesResponse* r,
         std::function<void(grpc::Status)> done) -> std::shared_ptr<void> {
        std::shared_ptr<::observer::Observer::Stub> stub = ::observer::Observer::NewStub(p.channel);
        stub->async()->GetNamespaces(c, &kRequest, r, std::move(done));
        return stub;
      },
      [reactor, resp](std::vector<PeerAnswer<::observer::GetNamespacesResponse>>& answers) {
        std::set<std::pair<std::string, std::string>> all;
        for (const auto& a : answers) {
          if (!a.status.ok()) continue;
          for (const auto& n : a.response.namespaces()) all.emplace(n.cluster(), n.namespace_());
        }
        for (const auto& [cluster, ns] : all) {
          ::observer::Namespace* n = resp->add_namespaces();
          n->set_cluster(cluster);
          n->set_namespace_(ns);
        }
        reactor->Finish(grpc::Status::OK);
      });
  return reactor;
}

}  // namespace flowscope::relay
