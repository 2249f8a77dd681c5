// DynamicExporters: Hubble's dynamic flow logs — a YAML file listing exporters, re-read when it
// changes, each exporter added, restarted or removed without restarting the observer:
//
//   flowLogs:
//     - name: denied
//       filePath: /var/run/flowscope/denied.log
//       fieldMask: [time, source.namespace, source.pod_name, destination, verdict]
//       includeFilters: [{verdict: [DROPPED]}]
//       excludeFilters: []
//       end: "2027-01-01T00:00:00Z"   # optional: stops exporting after this
//
// A file that cannot be read or parsed keeps the exporters running as they are (and says why);
// an exporter whose file cannot be opened is reported and the others go on.
//
// Thread-safety: Apply/Maintain/Stop from one thread; Collect from any thread.
#ifndef FLOWSCOPE_OBSERVER_DYNAMIC_EXPORTERS_H_
#define FLOWSCOPE_OBSERVER_DYNAMIC_EXPORTERS_H_

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "api/metrics.h"
#include "observer/exporter.h"

namespace flowscope::observer {

// Parses the flowLogs file's text; errors name the exporter and the problem.
absl::StatusOr<std::vector<ExporterConfig>> ParseFlowLogs(absl::string_view text);

class DynamicExporters {
 public:
  DynamicExporters(const Ring& ring, const EndpointTable& table, const FlowBuilder& builder,
                   std::string path, RotationOptions rotation);
  ~DynamicExporters();  // Stop()s

  // Reads the file when it changed (and at the first call) and applies it; the error, if the
  // file was refused (the exporters stay as they were).
  absl::Status Maintain();
  void Stop();

  // hubble_dynamic_exporter_* families.
  void Collect(MetricsWriter& w) const;
  std::vector<std::string> Active() const;  // exporter names
  // Each running exporter's name and counts (for flowscope_exporter_*).
  std::vector<std::pair<std::string, FlowExporter::Stats>> Stats() const;

 private:
  const Ring& ring_;
  const EndpointTable& table_;
  const FlowBuilder& builder_;
  const std::string path_;
  const RotationOptions rotation_;
  std::string signature_ = "-";  // of the file last read ("-": never read)
  mutable std::mutex mu_;
  std::map<std::string, std::unique_ptr<FlowExporter>> exporters_;
  std::map<std::string, std::string> canonical_;  // name → its configuration, to see changes
  std::map<std::string, std::string> failed_;     // name → why it could not start
  std::map<std::string, uint64_t> reconfigurations_ = {{"add", 0}, {"update", 0}, {"remove", 0}};
  uint64_t refused_ = 0;
  double last_applied_ = 0;  // seconds since the epoch
};

}  // namespace flowscope::observer

#endif  // FLOWSCOPE_OBSERVER_DYNAMIC_EXPORTERS_H_
