// FanOut: one unary call to each of a set of peers at once, through gRPC's callback API (no
// thread per peer), with one deadline for all: what a peer has not answered by then is
// cancelled and reported as not answered, so a stopped peer costs the caller the timeout, not
// the call's. Called from any thread; returns once every call has completed.
//
//   auto answers = FanOut<::observer::ServerStatusResponse>(
//       peers, absl::Seconds(2),
//       [](const Peer& p, grpc::ClientContext* ctx, ::observer::ServerStatusResponse* resp,
//          std::function<void(grpc::Status)> done) {
//         ::observer::Observer::NewStub(p.channel)->async()->ServerStatus(
//             ctx, &kStatusRequest, resp, std::move(done));
//       });
#ifndef FLOWSCOPE_RELAY_FAN_OUT_H_
#define FLOWSCOPE_RELAY_FAN_OUT_H_

#include <grpcpp/grpcpp.h>

#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <vector>

#include "absl/time/time.h"
#include "relay/peer_pool.h"

namespace flowscope::relay {

template <typename Response>
struct PeerAnswer {
  const Peer* peer = nullptr;
  grpc::Status status;  // DEADLINE_EXCEEDED or CANCELLED when it did not answer in time
  Response response;
};

// `start(peer, ctx, response, done)` begins the call (ctx and response live until done runs).
template <typename Response, typename Start>
std::vector<PeerAnswer<Response>> FanOut(const std::vector<const Peer*>& peers,
                                         absl::Duration timeout, Start start) {
  struct Call {
    grpc::ClientContext ctx;
    bool done = false;
  };
  std::vector<PeerAnswer<Response>> answers(peers.size());
  std::vector<std::unique_ptr<Call>> calls;
  std::mutex mu;
  std::condition_variable cv;
  size_t pending = peers.size();
  const auto deadline = std::chrono::system_clock::now() + absl::ToChronoNanoseconds(timeout);
  for (size_t i = 0; i < peers.size(); ++i) {
    answers[i].peer = peers[i];
    calls.push_back(std::make_unique<Call>());
    calls[i]->ctx.set_deadline(deadline);
  }
  for (size_t i = 0; i < peers.size(); ++i) {
    start(*peers[i], &calls[i]->ctx, &answers[i].response, [&, i](grpc::Status s) {
      std::lock_guard<std::mutex> lock(mu);
      answers[i].status = std::move(s);
      calls[i]->done = true;
      if (--pending == 0) cv.notify_all();
    });
  }
  std::unique_lock<std::mutex> lock(mu);
  if (!cv.wait_until(lock, deadline, [&] { return pending == 0; })) {
    // The deadline cancels them in gRPC too; this only makes it certain and prompt.
    for (auto& c : calls) {
      if (!c->done) c->ctx.TryCancel();
    }
  }
  // Every callback runs before the state it touches goes away.
  cv.wait(lock, [&] { return pending == 0; });
  return answers;
}

}  // namespace flowscope::relay

#endif  // FLOWSCOPE_RELAY_FAN_OUT_H_
