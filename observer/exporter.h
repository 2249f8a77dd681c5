// FlowExporter: Hubble's flow export — one JSON `observer.ExportEvent` per line (flows, and
// lost-event notices) to a file or stdout, with allow/deny FlowFilters (GetFlows' semantics and
// code), a field mask, and size-based rotation keeping N backups (optionally gzipped), as
// Hubble's `hubble-export-*` settings do. It is a ring reader on its own thread: a slow disk
// makes it fall behind and lose flows — counted, and written to the file as a lost-events
// line — never slows the drain. A write that fails (disk full, file gone) is counted and
// logged; the exporter goes on with the next lines.
//
//   FlowExporter e(ring, builder, {.file_path = "/var/run/flowscope/events.log"}, {});
//   if (absl::Status s = e.Start(); !s.ok()) ...  // names the path and the problem
//
// Thread-safety: Start/Stop from the owner; stats() from any thread.
#ifndef FLOWSCOPE_OBSERVER_EXPORTER_H_
#define FLOWSCOPE_OBSERVER_EXPORTER_H_

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "flow/flow.pb.h"
#include "observer/filter.h"
#include "observer/flow_builder.h"
#include "observer/flow_query.h"

namespace flowscope::observer {

struct ExporterConfig {
  std::string name = "static";
  std::string file_path = {};                  // "stdout": the process's standard output
  std::vector<flow::FlowFilter> include = {};  // allow list (OR); empty: every flow
  std::vector<flow::FlowFilter> exclude = {};  // deny list
  std::vector<std::string> field_mask = {};    // Flow field paths to keep; empty: all
  absl::Time end = absl::InfiniteFuture();     // stops exporting after this
};

struct RotationOptions {
  uint64_t max_size_bytes = 10 << 20;
  int max_backups = 5;
  bool compress = false;  // gzip rotated files
};

// Hubble's filter list syntax: JSON FlowFilter objects, one or several (separated by commas,
// whitespace or newlines, or as a JSON array).
absl::StatusOr<std::vector<flow::FlowFilter>> ParseFilterList(absl::string_view text);

// An append-only file that rotates at a size: the full file is renamed to
// "<stem>-<UTC time><ext>" (gzipped to ...<ext>.gz when asked), a fresh one is opened, and only
// the newest max_backups rotated files are kept. Lines are buffered and written whole: when a
// write fails part-way (disk full) the file is cut back to its last complete line, so it never
// holds a torn line and every line is counted either written or failed.
class RotatingFile {
 public:
  struct Counts {
    uint64_t written = 0;  // counted lines (WriteLine's `counted`) that reached the file
    uint64_t failed = 0;   // lines of any kind that could not be written
    std::string last_error;
  };

  static absl::StatusOr<std::unique_ptr<RotatingFile>> Open(std::string path,
                                                            RotationOptions options);
  ~RotatingFile();
  // Queues one line (its newline added), rotating first if it would not fit; writes the queue
  // once it is large. A failure shows in counts().
  void WriteLine(absl::string_view line, bool counted);
  // Writes what is queued.
  void Flush();
  const Counts& counts() const { return counts_; }
  std::vector<std::string> Backups() const;  // oldest first

 private:
  RotatingFile(std::string path, RotationOptions options)
      : path_(std::move(path)), options_(options) {}
  absl::Status Rotate();
  absl::Status OpenCurrent();
  void Fail(uint64_t lines, const absl::Status& status);

  const std::string path_;
  const RotationOptions options_;
  int fd_ = -1;
  bool stdout_ = false;
  uint64_t size_ = 0;  // bytes of complete lines in the file
  std::string pending_;
  uint64_t pending_lines_ = 0;
  uint64_t pending_counted_ = 0;
  Counts counts_;
  int rotations_ = 0;  // makes backup names unique within one millisecond
};

class FlowExporter {
 public:
  struct Stats {
    uint64_t exported = 0;      // flow lines written (once they reach the file)
    uint64_t lost = 0;          // flows the ring moved past before they were exported
    uint64_t write_errors = 0;  // lines that could not be written
    std::string last_error;
  };

  FlowExporter(const Ring& ring, const EndpointTable& table, const FlowBuilder& builder,
               ExporterConfig config, RotationOptions rotation);
  ~FlowExporter();  // Stop()s

  // Compiles the filters and opens the file (errors name them), then exports what is
  // published from now on.
  absl::Status Start();
  void Stop();

  Stats stats() const;
  const ExporterConfig& config() const { return config_; }

 private:
  void Run(uint64_t from);
  void Write(absl::string_view line, bool flow);
  void Sync();  // stats_ from the file's counts
  void WriteLost(uint64_t n);

  const Ring& ring_;
  const EndpointTable& table_;
  const FlowBuilder& builder_;
  const ExporterConfig config_;
  const RotationOptions rotation_;
  std::unique_ptr<FlowPredicate> predicate_;
  std::unique_ptr<RotatingFile> file_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
  mutable std::mutex mu_;
  Stats stats_;
};

}  // namespace flowscope::observer

#endif  // FLOWSCOPE_OBSERVER_EXPORTER_H_
