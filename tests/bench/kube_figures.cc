// B15: the Kubernetes endpoint source against the test API server (tests/testing/kube_apiserver.h)
// in this process: the initial sync of 10,000 pods and 1,000 services (seconds, and heap bytes
// the source and the endpoint table hold per pod afterwards), then watch events applied per
// second (a burst of pod updates queued on the server's watch stream, from its first byte to the
// source's count).
#include <malloc.h>

#include <chrono>
#include <memory>
#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "observer/endpoint_table.h"
#include "observer/kube_source.h"
#include "tests/bench/figures.h"
#include "tests/testing/kube_apiserver.h"
#include "tests/testing/kube_fixtures.h"
#include "tests/testing/wait.h"

namespace flowscope::bench {
namespace {

using Clock = std::chrono::steady_clock;
using nlohmann::json;

constexpr int kPods = 10000;
constexpr int kServices = 1000;
constexpr int kEvents = 20000;

// Heap bytes in use, after returning what is free.
double HeapInUse() {
  malloc_trim(0);
  const struct mallinfo2 m = mallinfo2();
  return static_cast<double>(m.uordblks + m.hblkhd);
}

std::string PodIp(int i) {
  return absl::StrCat("10.", 1 + i / 62500, ".", i / 250 % 250, ".", i % 250 + 1);
}

std::vector<FigureResult> RunB15(const Options& options) {
  std::vector<double> sync_s, bytes_per_pod, events_per_s;
  const int runs = std::min(options.runs, 3);
  for (int run = 0; run < runs; ++run) {
    auto server = testing::KubeApiServer::Start({});
    if (!server.ok()) return {};
    // 10,000 pods of 400 Deployments in 20 namespaces, 1,000 services, 50 nodes.
    std::vector<json> pods, services, namespaces, nodes;
    for (int i = 0; i < kPods; ++i) {
      const std::string ns = absl::StrCat("team-", i % 20);
      const std::string deployment = absl::StrCat("app-", i % 400);
      pods.push_back(testing::KubeDeploymentPod(ns, deployment, absl::StrCat(deployment, "-", i),
                                                PodIp(i), absl::StrCat("node-", i % 50)));
    }
    for (int i = 0; i < kServices; ++i) {
      services.push_back(
          testing::KubeService(absl::StrCat("team-", i % 20), absl::StrCat("svc-", i),
                               absl::StrCat("10.96.", i / 250, ".", i % 250 + 1), 80 + i % 3));
    }
    for (int i = 0; i < 20; ++i) {
      namespaces.push_back(
          testing::KubeNamespace(absl::StrCat("team-", i), {{"team", absl::StrCat("t", i)}}));
    }
    for (int i = 0; i < 50; ++i) {
      nodes.push_back(testing::KubeNode(absl::StrCat("node-", i),
                                        absl::StrCat("192.168.", i / 250, ".", i % 250 + 1)));
    }
    (*server)->ApplyAll("pods", pods);
    (*server)->ApplyAll("services", services);
    (*server)->ApplyAll("namespaces", namespaces);
    (*server)->ApplyAll("nodes", nodes);

    const double before = HeapInUse();
    auto table = std::make_unique<observer::EndpointTable>("default");
    auto client = observer::KubeClient::Create({.server = (*server)->url()});
    if (!client.ok()) return {};
    auto source = std::make_unique<observer::KubernetesEndpointSource>(
        *std::move(client), *table, observer::KubeSourceOptions{.node_name = "node-0"});
    const auto start = Clock::now();
    (void)source->Start();
    if (!testing::WaitUntil([&] { return source->NotSynced().empty(); }, absl::Seconds(120))) {
      return {};
    }
    sync_s.push_back(std::chrono::duration<double>(Clock::now() - start).count());
    bytes_per_pod.push_back((HeapInUse() - before) / kPods);

    // A burst of pod updates (a label change each), applied as watch events.
    const uint64_t events_before = source->stats().events;
    std::vector<json> updates;
    for (int i = 0; i < kEvents; ++i) {
      json p = pods[static_cast<size_t>(i % kPods)];
      p["metadata"]["labels"]["version"] = absl::StrCat("v", i / kPods + 2);
      updates.push_back(std::move(p));
    }
    // The server queues the whole burst for the watch before it sends any of it (its own JSON
    // work is not the source's): the clock starts once the events are on their way.
    (*server)->ApplyAll("pods", updates);
    const auto burst = Clock::now();
    if (!testing::WaitUntil([&] { return source->stats().events >= events_before + kEvents; },
                            absl::Seconds(120))) {
      return {};
    }
    events_per_s.push_back(kEvents / std::chrono::duration<double>(Clock::now() - burst).count());
    source->Stop();
  }
  return {
      MakeFigure("B15", "kube_initial_sync_s_10k_pods_1k_services", "s", sync_s, std::nullopt, {}),
      MakeFigure("B15", "kube_memory_bytes_per_pod", "bytes", bytes_per_pod, std::nullopt,
                 {Target::AtMost(1024, "bytes")}),
      MakeFigure("B15", "kube_watch_events_per_s", "events/s", events_per_s, std::nullopt, {})};
}

}  // namespace

std::vector<Figure> KubeFigures() {
  return {{"B15",
           "Kubernetes source: initial sync of 10,000 pods + 1,000 services (time, heap per "
           "pod); watch events applied per second",
           RunB15}};
}

}  // namespace flowscope::bench
