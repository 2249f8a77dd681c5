// FlowMetrics: Hubble's flow metrics — the same `--metrics` syntax, names, labels and context
// options, so existing dashboards and alerts work — counted off the drain thread by a ring
// reader of its own (a reader that falls a ring behind loses records, and counts them; the
// drain never waits for it).
//
//   --metrics "flow:sourceContext=namespace;destinationContext=namespace drop tcp"
//
// Each item is `name[:option;option...]`, items separated by spaces (the flag may be given
// several times). Metrics: flow, drop, tcp, port-distribution, icmp, flows-to-world, dns. Options:
// sourceContext / destinationContext and their Egress/Ingress variants (identity | namespace |
// pod | pod-short | pod-name | dns | ip | reserved-identity | workload | workload-name | app,
// several joined by '|': the first non-empty wins), labelsContext (source_ip, source_pod,
// source_namespace, source_workload, source_app, the destination_ ones, traffic_direction) and,
// for flows-to-world, any-drop, port and syn-only; for dns, query and ignoreAAAA. Anything else is
// an error naming it. dns counts the passive DNS flows (hubble_dns_queries_total,
// hubble_dns_responses_total, hubble_dns_response_types_total), reading each message from the
// DnsTable the options name.
//
// Label cardinality is bounded: beyond max_series series per metric, new label sets are counted
// in one series whose context labels read "overflow" (and flowscope_metrics_overflow_total
// counts them); series with context labels not incremented for series_ttl are dropped, so
// pods that are gone leave no series behind.
//
// Thread-safety: Start/Stop from the owner; Collect from any thread; Process from one thread.
#ifndef FLOWSCOPE_OBSERVER_FLOW_METRICS_H_
#define FLOWSCOPE_OBSERVER_FLOW_METRICS_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "api/clock.h"
#include "api/metrics.h"
#include "observer/dns_table.h"
#include "observer/endpoint_table.h"
#include "observer/flow_query.h"
#include "observer/name_cache.h"

namespace flowscope::observer {

enum class MetricContext {
  kIdentity,
  kNamespace,
  kPod,
  kPodShort,
  kPodName,
  kDns,
  kIp,
  kReservedIdentity,
  kWorkload,
  kWorkloadName,
  kApp,
};

struct MetricContextOptions {
  std::vector<MetricContext> source, destination;
  std::vector<MetricContext> source_egress, source_ingress;
  std::vector<MetricContext> destination_egress, destination_ingress;
  std::vector<std::string> labels;  // labelsContext, in Hubble's order

  // The context labels a metric gets after its own: labelsContext's, then "source" and
  // "destination" when those are set.
  std::vector<std::string> LabelNames() const;
  bool empty() const { return source.empty() && destination.empty() && labels.empty(); }
};

struct MetricSpec {
  std::string name;  // flow, drop, tcp, port-distribution, icmp, flows-to-world, dns
  MetricContextOptions context;
  bool any_drop = false;  // flows-to-world
  bool port = false;
  bool syn_only = false;
  bool query = false;        // dns: a "query" label with the name asked for
  bool ignore_aaaa = false;  // dns: AAAA-only lookups are not counted
};

// Parses --metrics values.
absl::StatusOr<std::vector<MetricSpec>> ParseMetricSpecs(const std::vector<std::string>& values);

struct FlowMetricsOptions {
  std::vector<MetricSpec> metrics;
  size_t max_series = 10000;  // per metric
  absl::Duration series_ttl = absl::Minutes(10);
  const Clock* clock = nullptr;      // the real one when unset
  const DnsTable* dns = nullptr;     // the messages of DNS records (the dns metric needs it)
  const NameCache* names = nullptr;  // the names clients looked up (the dns context needs it)
};

class FlowMetrics {
 public:
  FlowMetrics(const Ring& ring, const EndpointTable& table, FlowMetricsOptions options);
  ~FlowMetrics();  // Stop()s
  FlowMetrics(const FlowMetrics&) = delete;
  FlowMetrics& operator=(const FlowMetrics&) = delete;

  // Reads the ring from its oldest record on, on a thread of its own.
  void Start();
  void Stop();

  // Counts one record (the reader thread; tests call it directly when not started).
  void Process(const FlowRecord& r);
  // Drops the series that expired.
  void Expire();

  // Every enabled metric's family and series, and flowscope_metrics_*.
  void Collect(MetricsWriter& w) const;

  uint64_t processed() const { return processed_.load(std::memory_order_relaxed); }
  uint64_t missed() const { return missed_.load(std::memory_order_relaxed); }

  struct Handler;
  struct Key;

 private:
  void Fold(const FlowRecord& r, absl::flat_hash_map<Key, uint64_t>* batch) const;
  void Flush(absl::flat_hash_map<Key, uint64_t>* batch);
  // Counts `n` records alike in what the metrics look at.
  void CountAll(const FlowRecord& r, uint64_t n);
  // The dns metric's families for a DNS record whose message is `m`.
  void CountDns(uint64_t n, Handler& h, const FlowRecord& r, const flow::DNS& m);
  // A context label value of an endpoint, cached by (endpoint id, context).
  const std::string& EndpointContext(uint32_t id, MetricContext c);
  void Count(uint64_t n, Handler& h, const FlowRecord& r, const std::vector<std::string>& fixed);
  // The dns context: Hubble's source_names / destination_names, joined by ','.
  std::string DnsNames(const FlowRecord& r, bool source) const;
  void ContextValues(const Handler& h, const FlowRecord& r, std::vector<std::string>* out);
  void Run(uint64_t from);

  const Ring& ring_;
  const EndpointTable& table_;
  const FlowMetricsOptions options_;
  const Clock& clock_;
  std::vector<std::unique_ptr<Handler>> handlers_;
  bool need_addresses_ = false;  // a context or label is an address
  bool need_dns_ = false;        // the dns metric reads each DNS record's message
  uint64_t count_time_ns_ = 0;   // the newest record folded: when names are looked up
  absl::flat_hash_map<uint64_t, std::string> endpoint_context_;  // Process's thread only
  std::atomic<uint64_t> processed_{0};
  std::atomic<uint64_t> missed_{0};
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace flowscope::observer

#endif  // FLOWSCOPE_OBSERVER_FLOW_METRICS_H_
