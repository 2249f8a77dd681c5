#include "observer/exporter.h"

#include <fcntl.h>
#include <google/protobuf/util/json_util.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "api/field_mask.h"
#include "api/json.h"
#include "api/logging.h"
#include "api/text.h"
#include "observer/flow_trim.h"
#include "observer/observer.pb.h"

namespace flowscope::observer {
namespace {

namespace fs = std::filesystem;

std::string Errno(int e) { return std::strerror(e); }

// "events.log" → {"events", ".log"}.
std::pair<std::string, std::string> StemAndExtension(const std::string& path) {
  const fs::path p(path);
  return {(p.parent_path() / p.stem()).string(), p.extension().string()};
}

absl::Status Gzip(const std::string& from, const std::string& to) {
  std::FILE* in = std::fopen(from.c_str(), "rb");
  if (in == nullptr) return absl::InternalError(absl::StrCat(from, ": ", Errno(errno)));
  gzFile out = gzopen(to.c_str(), "wb");
  if (out == nullptr) {
    std::fclose(in);
    return absl::InternalError(absl::StrCat(to, ": cannot open for gzip"));
  }
  char buf[1 << 16];
  size_t n;
  bool ok = true;
  while ((n = std::fread(buf, 1, sizeof buf, in)) > 0) {
    if (gzwrite(out, buf, static_cast<unsigned>(n)) != static_cast<int>(n)) ok = false;
  }
  std::fclose(in);
  if (gzclose(out) != Z_OK) ok = false;
  if (!ok) {
    std::remove(to.c_str());
    return absl::InternalError(absl::StrCat(to, ": gzip failed"));
  }
  std::remove(from.c_str());
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::vector<flow::FlowFilter>> ParseFilterList(absl::string_view text) {
  std::vector<flow::FlowFilter> out;
  size_t i = 0;
  bool array = false;
  auto skip = [&] {
    while (i < text.size() && (absl::ascii_isspace(text[i]) || text[i] == ',')) ++i;
  };
  skip();
  if (i < text.size() && text[i] == '[') {
    array = true;
    ++i;
  }
  while (true) {
    skip();
    if (i >= text.size()) break;
    if (array && text[i] == ']') {
      ++i;
      skip();
      if (i < text.size()) {
        return absl::InvalidArgumentError(
            absl::StrCat("filter list: unexpected \"", Quote(text.substr(i, 20)), "\" after ]"));
      }
      break;
    }
    if (text[i] != '{') {
      return absl::InvalidArgumentError(absl::StrCat("filter list: expected a JSON object at \"",
                                                     Quote(text.substr(i, 20)), "\""));
    }
    // The object's extent: braces outside strings.
    const size_t start = i;
    int depth = 0;
    bool in_string = false;
    for (; i < text.size(); ++i) {
      const char c = text[i];
      if (in_string) {
        if (c == '\\') {
          ++i;
        } else if (c == '"') {
          in_string = false;
        }
      } else if (c == '"') {
        in_string = true;
      } else if (c == '{') {
        ++depth;
      } else if (c == '}' && --depth == 0) {
        ++i;
        break;
      }
    }
    if (depth != 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("filter list: filter ", out.size() + 1, " is not closed"));
    }
    flow::FlowFilter f;
    google::protobuf::util::JsonParseOptions options;
    const auto s = google::protobuf::util::JsonStringToMessage(
        std::string(text.substr(start, i - start)), &f, options);
    if (!s.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("filter list: filter ", out.size() + 1, ": ",
                                                     Quote(std::string(s.message()))));
    }
    out.push_back(std::move(f));
  }
  return out;
}

// --- RotatingFile -------------------------------------------------------------------------------

absl::StatusOr<std::unique_ptr<RotatingFile>> RotatingFile::Open(std::string path,
                                                                 RotationOptions options) {
  if (path.empty()) return absl::InvalidArgumentError("export file: no path");
  std::unique_ptr<RotatingFile> f(new RotatingFile(std::move(path), options));
  if (absl::Status s = f->OpenCurrent(); !s.ok()) return s;
  return f;
}

RotatingFile::~RotatingFile() {
  Flush();
  if (fd_ >= 0 && !stdout_) ::close(fd_);
}

absl::Status RotatingFile::OpenCurrent() {
  if (path_ == "stdout") {
    fd_ = STDOUT_FILENO;
    stdout_ = true;
    return absl::OkStatus();
  }
  std::error_code ec;
  const fs::path parent = fs::path(path_).parent_path();
  if (!parent.empty()) fs::create_directories(parent, ec);
  if (fs::is_directory(path_, ec)) {
    return absl::InvalidArgumentError(absl::StrCat("export file ", path_, ": is a directory"));
  }
  fd_ = ::open(path_.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0666);
  if (fd_ < 0) {
    return absl::UnavailableError(absl::StrCat("export file ", path_, ": ", Errno(errno)));
  }
  struct stat st {};
  size_ = ::fstat(fd_, &st) == 0 && S_ISREG(st.st_mode) ? static_cast<uint64_t>(st.st_size) : 0;
  return absl::OkStatus();
}

void RotatingFile::Fail(uint64_t lines, const absl::Status& status) {
  counts_.failed += lines;
  counts_.last_error = std::string(status.message());
}

void RotatingFile::WriteLine(absl::string_view line, bool counted) {
  if (fd_ < 0) {
    if (absl::Status s = OpenCurrent(); !s.ok()) return Fail(1, s);
  }
  const uint64_t queued = size_ + pending_.size();
  if (!stdout_ && queued > 0 && queued + line.size() + 1 > options_.max_size_bytes) {
    Flush();
    if (absl::Status s = Rotate(); !s.ok()) {
      if (fd_ < 0) return Fail(1, s);
      FLOWSCOPE_LOG_WARN("{}", std::string(s.message()));  // rotated, but not all of it went well
    }
  }
  pending_.append(line.data(), line.size());
  pending_.push_back('\n');
  ++pending_lines_;
  pending_counted_ += counted;
  if (pending_.size() >= (64u << 10)) Flush();
}

void RotatingFile::Flush() {
  if (pending_.empty()) return;
  size_t done = 0;
  int err = 0;
  while (done < pending_.size()) {
    const ssize_t n = ::write(fd_, pending_.data() + done, pending_.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      err = n < 0 ? errno : ENOSPC;
      break;
    }
    done += static_cast<size_t>(n);
  }
  if (done == pending_.size()) {
    size_ += done;
    counts_.written += pending_counted_;
  } else {
    // Cut the torn line off: the file ends with a whole line, and the next write starts a line.
    if (!stdout_ && done > 0 && ::ftruncate(fd_, static_cast<off_t>(size_)) != 0) {
      FLOWSCOPE_LOG_WARN("export file {}: cutting a torn line off: {}", path_, Errno(errno));
    }
    Fail(pending_lines_,
         absl::UnavailableError(absl::StrCat("export file ", path_, ": ", Errno(err))));
  }
  pending_.clear();
  pending_lines_ = 0;
  pending_counted_ = 0;
}

std::vector<std::string> RotatingFile::Backups() const {
  std::vector<std::string> out;
  if (stdout_) return out;
  const auto [stem, ext] = StemAndExtension(path_);
  const std::string prefix = fs::path(stem).filename().string() + "-";
  std::error_code ec;
  const fs::path dir =
      fs::path(path_).parent_path().empty() ? fs::path(".") : fs::path(path_).parent_path();
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (name.rfind(prefix, 0) == 0 && (name.size() > ext.size()) &&
        (name.find(ext, prefix.size()) != std::string::npos)) {
      out.push_back(entry.path().string());
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

absl::Status RotatingFile::Rotate() {
  ::close(fd_);
  fd_ = -1;
  const auto [stem, ext] = StemAndExtension(path_);
  // lumberjack's names: events-2006-01-02T15-04-05.000.log, sortable by time.
  std::string backup = absl::StrCat(
      stem, "-", absl::FormatTime("%Y-%m-%dT%H-%M-%E3S", absl::Now(), absl::UTCTimeZone()),
      rotations_ > 0 ? absl::StrCat("-", rotations_) : "", ext);
  ++rotations_;
  std::error_code ec;
  fs::rename(path_, backup, ec);
  absl::Status status =
      ec ? absl::UnavailableError(absl::StrCat("export file ", path_, ": rotating: ", ec.message()))
         : absl::OkStatus();
  if (status.ok() && options_.compress) {
    if (absl::Status s = Gzip(backup, backup + ".gz"); !s.ok()) status = s;
  }
  std::vector<std::string> backups = Backups();
  for (size_t i = 0; i + static_cast<size_t>(std::max(options_.max_backups, 0)) < backups.size();
       ++i) {
    fs::remove(backups[i], ec);
  }
  if (absl::Status s = OpenCurrent(); !s.ok()) return s;
  size_ = 0;
  return status;
}

// --- FlowExporter -------------------------------------------------------------------------------

FlowExporter::FlowExporter(const Ring& ring, const EndpointTable& table, const FlowBuilder& builder,
                           ExporterConfig config, RotationOptions rotation)
    : ring_(ring),
      table_(table),
      builder_(builder),
      config_(std::move(config)),
      rotation_(rotation) {}

FlowExporter::~FlowExporter() { Stop(); }

absl::Status FlowExporter::Start() {
  google::protobuf::RepeatedPtrField<flow::FlowFilter> include(config_.include.begin(),
                                                               config_.include.end());
  google::protobuf::RepeatedPtrField<flow::FlowFilter> exclude(config_.exclude.begin(),
                                                               config_.exclude.end());
  auto predicate = FlowPredicate::Compile(include, exclude, table_, builder_);
  if (!predicate.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("exporter ", config_.name, ": ", predicate.status().message()));
  }
  predicate_ = std::make_unique<FlowPredicate>(*std::move(predicate));
  for (const std::string& path : config_.field_mask) {
    google::protobuf::FieldMask one;
    one.add_paths(path);
    if (!CompiledFieldMask::Compile(one, flow::Flow::descriptor()).ok()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "exporter ", config_.name, ": field mask: no Flow field \"", Quote(path), "\""));
    }
  }
  auto file = RotatingFile::Open(config_.file_path, rotation_);
  if (!file.ok()) return file.status();
  file_ = std::move(file).value();
  const uint64_t from = ring_.EndPosition();
  thread_ = std::thread([this, from] { Run(from); });
  return absl::OkStatus();
}

void FlowExporter::Stop() {
  stop_.store(true);
  if (thread_.joinable()) thread_.join();
  if (file_) {
    file_->Flush();
    Sync();
  }
}

FlowExporter::Stats FlowExporter::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

void FlowExporter::Write(absl::string_view line, bool flow) {
  file_->WriteLine(line, flow);
  Sync();
}

void FlowExporter::Sync() {
  const RotatingFile::Counts& c = file_->counts();
  std::lock_guard<std::mutex> lock(mu_);
  // Logged when the error changes (a full disk fails every line).
  if (c.failed > stats_.write_errors && c.last_error != stats_.last_error) {
    FLOWSCOPE_LOG_ERROR("exporter {}: {}; lines are dropped until it can write again", config_.name,
                        c.last_error);
  }
  stats_.exported = c.written;
  stats_.write_errors = c.failed;
  stats_.last_error = c.last_error;
}

void FlowExporter::WriteLost(uint64_t n) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stats_.lost += n;
  }
  ::observer::ExportEvent e;
  e.mutable_lost_events()->set_source(flow::HUBBLE_RING_BUFFER);
  e.mutable_lost_events()->set_num_events_lost(n);
  e.mutable_lost_events()->mutable_cpu()->set_value(0);
  e.set_node_name(builder_.node_name());
  const int64_t now = absl::ToUnixNanos(absl::Now());
  e.mutable_time()->set_seconds(now / 1'000'000'000);
  e.mutable_time()->set_nanos(static_cast<int32_t>(now % 1'000'000'000));
  std::string line;
  AppendJson(e, &line);
  Write(line, false);
}

void FlowExporter::Run(uint64_t from) {
  google::protobuf::FieldMask paths;
  for (const std::string& p : config_.field_mask) paths.add_paths(p);
  // Checked in Start(): every path names a Flow field.
  const FlowTrimmer mask(
      CompiledFieldMask::Compile(paths, flow::Flow::descriptor()).value_or(CompiledFieldMask()));
  ringbuf::RingReader<FlowRecord> reader(ring_, from);
  PollPause pause;
  FlowRecord r;
  ::observer::ExportEvent e;
  std::string line;
  while (!stop_.load(std::memory_order_acquire)) {
    size_t read = 0;
    for (bool more = true; more && read < 4096;) {
      switch (reader.Next(&r)) {
        case ringbuf::ReadStatus::kRecord: {
          ++read;
          const uint64_t position = reader.position() - 1;
          if (absl::FromUnixNanos(static_cast<int64_t>(r.time_ns)) > config_.end) break;
          if (!predicate_->MatchesAll() && !predicate_->Match(r, position)) break;
          e.Clear();
          flow::Flow* f = e.mutable_flow();
          builder_.Build(r, position, f);
          e.set_node_name(f->node_name());
          *e.mutable_time() = f->time();
          mask.Trim(f);
          line.clear();
          AppendJson(e, &line);
          Write(line, true);
          break;
        }
        case ringbuf::ReadStatus::kLost:
          WriteLost(reader.TakeLost());
          break;
        case ringbuf::ReadStatus::kEnd:
          more = false;
          break;
      }
    }
    if (read == 4096) continue;
    file_->Flush();
    Sync();
    pause.After(read);
  }
}

}  // namespace flowscope::observer
