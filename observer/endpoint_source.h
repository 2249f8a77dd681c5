// Endpoint sources feed an EndpointTable. FileEndpointSource reads a JSON or YAML list of
// endpoints and re-reads it whenever it changes; bad entries are reported and skipped while the
// rest still load. A file that cannot be read, is empty, or has no valid entry keeps the last
// good endpoints (`[]` removes them all). Kubernetes and etcd sources implement the same interface
// later.
//
// The file is a list (or a map with an `endpoints:` list) of entries like:
//
//   - ip: 10.0.1.5              # or ips: [10.0.1.5, fd00::5]
//     namespace: default
//     pod: tiefighter
//     labels: {org: empire, class: tiefighter}   # or a list of "key=value"
//     workload: {name: tiefighter, kind: Deployment}
//     node: node-1
//     cluster: default          # optional
//     identity: 12345           # optional; otherwise derived from namespace + labels
//
// Start() and Stop() from one thread; the source polls the file on its own thread.
#ifndef FLOWSCOPE_OBSERVER_ENDPOINT_SOURCE_H_
#define FLOWSCOPE_OBSERVER_ENDPOINT_SOURCE_H_

#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "observer/endpoint_table.h"

namespace flowscope::observer {

class EndpointSource {
 public:
  virtual ~EndpointSource() = default;
  // Loads once (an error if that is impossible), then keeps the table current until Stop().
  virtual absl::Status Start() = 0;
  virtual void Stop() = 0;
};

struct ParsedEndpoints {
  std::vector<EndpointInfo> endpoints;
  std::vector<std::string> errors;  // one per skipped entry, naming it and the problem
};

// Parses the file format above. An error only if the document as a whole is unusable.
absl::StatusOr<ParsedEndpoints> ParseEndpointList(absl::string_view text);

class FileEndpointSource final : public EndpointSource {
 public:
  FileEndpointSource(std::string path, EndpointTable& table,
                     absl::Duration poll_interval = absl::Seconds(1));
  ~FileEndpointSource() override;

  absl::Status Start() override;
  void Stop() override;

  // Reads and applies the file now. Returns the per-entry problems (also logged).
  absl::StatusOr<std::vector<std::string>> LoadOnce();

  // How many times the file has been applied, and read at all (good or bad); for tests and
  // status.
  uint64_t loads() const;
  uint64_t attempts() const;
  // Why the file's current content is not in force ("" when it is).
  std::string last_error() const;

 private:
  void Poll();
  absl::StatusOr<std::vector<std::string>> Load();

  const std::string path_;
  EndpointTable& table_;
  const absl::Duration poll_interval_;
  std::thread thread_;
  mutable std::mutex mu_;
  std::condition_variable wake_;
  bool stop_ = false;
  uint64_t loads_ = 0;
  uint64_t attempts_ = 0;
  std::string last_error_;
  std::string last_signature_;  // mtime, size and inode of the last file applied
};

}  // namespace flowscope::observer

#endif  // FLOWSCOPE_OBSERVER_ENDPOINT_SOURCE_H_
