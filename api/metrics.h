// Prometheus exposition, written by hand (Debian 12 has no prometheus-cpp): the text format
// 0.0.4, or OpenMetrics 1.0.0 when the scraper asks for it in Accept (Prometheus does). The
// daemons keep their own counters and gauges; at each scrape, collectors write them out.
//
//   MetricsCollectors collectors;
//   collectors.Add([&](MetricsWriter& w) {
//     w.Counter("hubble_lost_events_total", "Number of lost events");
//     w.Sample({{"source", "perf_event_ring_buffer"}}, lost);
//   });
//   MetricsFormat f = NegotiateMetricsFormat(request.accept);
//   std::string body = collectors.Render(f);  // with MetricsContentType(f)
//
// Thread-safety: a MetricsWriter belongs to one scrape; MetricsCollectors::Add before serving,
// Render from any thread (collectors must be safe to call concurrently with the daemon).
#ifndef FLOWSCOPE_API_METRICS_H_
#define FLOWSCOPE_API_METRICS_H_

#include <functional>
#include <initializer_list>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace flowscope {

enum class MetricsFormat { kText, kOpenMetrics };

// OpenMetrics if `accept` lists application/openmetrics-text (with a q above 0), else text.
MetricsFormat NegotiateMetricsFormat(absl::string_view accept);
absl::string_view MetricsContentType(MetricsFormat format);

class MetricsWriter {
 public:
  explicit MetricsWriter(MetricsFormat format) : format_(format) {}

  // Starts a family. A counter's name ends in "_total" (the sample name; OpenMetrics names
  // the family without it). A family must not be started twice in one scrape.
  void Counter(absl::string_view name, absl::string_view help);
  void Gauge(absl::string_view name, absl::string_view help);

  // A sample of the current family; label values are escaped, label names must be valid.
  void Sample(double value) {
    Sample(absl::Span<const std::pair<absl::string_view, absl::string_view>>(), value);
  }
  void Sample(std::initializer_list<std::pair<absl::string_view, absl::string_view>> labels,
              double value) {
    Sample(absl::MakeConstSpan(labels.begin(), labels.size()), value);
  }
  void Sample(absl::Span<const std::pair<absl::string_view, absl::string_view>> labels,
              double value);
  // Names and values side by side (the same length).
  void Sample(absl::Span<const std::string> names, absl::Span<const std::string> values,
              double value);

  // The exposition (OpenMetrics ends with "# EOF").
  std::string Finish() &&;

 private:
  void Start(absl::string_view name, absl::string_view help, bool counter);
  void Value(double value);

  MetricsFormat format_;
  std::string out_;
  std::string family_;  // the sample name of the current family
};

// Formats a sample value: integers as integers, others shortest round-trip; NaN, +Inf, -Inf.
std::string FormatMetricValue(double value);

class MetricsCollectors {
 public:
  using Collector = std::function<void(MetricsWriter&)>;
  void Add(Collector c) {
    std::lock_guard<std::mutex> lock(mu_);
    collectors_.push_back(std::move(c));
  }
  std::string Render(MetricsFormat format) const;

 private:
  mutable std::mutex mu_;
  std::vector<Collector> collectors_;
};

}  // namespace flowscope

#endif  // FLOWSCOPE_API_METRICS_H_
