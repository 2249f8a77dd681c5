// FanOut: one unary call to each of a set of peers at once, through gRPC's callback API — no
// thread per peer, and none waiting — with one deadline for all (gRPC ends a call that has not
// answered by then with DEADLINE_EXCEEDED). `finish` gets every answer once the last call has
// completed, on that call's callback thread (or the caller's, for no peers), so a stopped peer
// costs the answer the timeout at most. Any thread.
//
//   FanOut<::observer::ServerStatusResponse>(
//       peers, absl::Seconds(2),
//       [](const Peer& p, grpc::ClientContext* ctx, ::observer::ServerStatusResponse* resp,
//          std::function<void(grpc::Status)> done) -> std::shared_ptr<void> {
//         auto stub = ::observer::Observer::NewStub(p.channel);
//         stub->async()->ServerStatus(ctx, &kRequest, resp, std::move(done));
//         return stub;  // kept until the calls are done
//       },
//       [reactor](std::vector<PeerAnswer<::observer::ServerStatusResponse>>& answers) { … });
#ifndef FLOWSCOPE_RELAY_FAN_OUT_H_
#define FLOWSCOPE_RELAY_FAN_OUT_H_

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <functional>
#include <memory>
#include <vector>

#include "absl/time/time.h"
#include "relay/peer_pool.h"

namespace flowscope::relay {

template <typename Response>
struct PeerAnswer {
  const Peer* peer = nullptr;  // valid while `finish` runs
  grpc::Status status;         // DEADLINE_EXCEEDED when it did not answer in time
  Response response;
};

// `start(peer, ctx, response, done)` begins one call (ctx and response live until done runs)
// and returns what must live as long (the stub).
template <typename Response, typename Start>
void FanOut(const std::vector<const Peer*>& peers, absl::Duration timeout, Start start,
            std::function<void(std::vector<PeerAnswer<Response>>&)> finish) {
  struct State {
    std::vector<Peer> peers;
    std::vector<PeerAnswer<Response>> answers;
    std::vector<std::unique_ptr<grpc::ClientContext>> contexts;
    std::vector<std::shared_ptr<void>> keep;
    std::atomic<size_t> pending{0};
    std::function<void(std::vector<PeerAnswer<Response>>&)> finish;
  };
  auto state = std::make_shared<State>();
  state->finish = std::move(finish);
  for (const Peer* p : peers) state->peers.push_back(*p);
  const size_t n = state->peers.size();
  state->answers.resize(n);
  state->pending.store(n + 1);  // +1: the starting loop, so `finish` cannot run inside it
  const auto deadline = std::chrono::system_clock::now() + absl::ToChronoNanoseconds(timeout);
  const auto one_done = [](const std::shared_ptr<State>& s) {
    if (s->pending.fetch_sub(1, std::memory_order_acq_rel) == 1) s->finish(s->answers);
  };
  for (size_t i = 0; i < n; ++i) {
    state->answers[i].peer = &state->peers[i];
    state->contexts.push_back(std::make_unique<grpc::ClientContext>());
    state->contexts[i]->set_deadline(deadline);
  }
  for (size_t i = 0; i < n; ++i) {
    state->keep.push_back(start(state->peers[i], state->contexts[i].get(),
                                &state->answers[i].response, [state, i, one_done](grpc::Status s) {
                                  state->answers[i].status = std::move(s);
                                  one_done(state);
                                }));
  }
  one_done(state);
}

}  // namespace flowscope::relay

#endif  // FLOWSCOPE_RELAY_FAN_OUT_H_
