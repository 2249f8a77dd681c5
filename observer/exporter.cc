#include "observer/exporter.h"

#include <google/protobuf/util/field_mask_util.h>
#include <google/protobuf/util/json_util.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "api/json.h"
#include "api/logging.h"
#include "api/text.h"
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
  if (file_ != nullptr && !stdout_) std::fclose(file_);
}

absl::Status RotatingFile::OpenCurrent() {
  if (path_ == "stdout") {
    file_ = stdout;
    stdout_ = true;
    return absl::OkStatus();
  }
  std::error_code ec;
  const fs::path parent = fs::path(path_).parent_path();
  if (!parent.empty()) fs::create_directories(parent, ec);
  if (fs::is_directory(path_, ec)) {
    return absl::InvalidArgumentError(absl::StrCat("export file ", path_, ": is a directory"));
  }
  file_ = std::fopen(path_.c_str(), "a");
  if (file_ == nullptr) {
    return absl::UnavailableError(absl::StrCat("export file ", path_, ": ", Errno(errno)));
  }
  const auto size = fs::file_size(path_, ec);
  size_ = ec ? 0 : size;
  return absl::OkStatus();
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
  std::fclose(file_);
  file_ = nullptr;
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

absl::Status RotatingFile::WriteLine(absl::string_view line) {
  if (file_ == nullptr) {
    if (absl::Status s = OpenCurrent(); !s.ok()) return s;
  }
  if (!stdout_ && size_ > 0 && size_ + line.size() + 1 > options_.max_size_bytes) {
    if (absl::Status s = Rotate(); !s.ok() && file_ == nullptr) return s;
  }
  errno = 0;
  const size_t n = std::fwrite(line.data(), 1, line.size(), file_);
  const bool nl = std::fputc('\n', file_) != EOF;
  if (n != line.size() || !nl) {
    const int e = errno;
    std::clearerr(file_);
    return absl::UnavailableError(
        absl::StrCat("export file ", path_, ": ", e != 0 ? Errno(e) : "short write"));
  }
  size_ += n + 1;
  return absl::OkStatus();
}

absl::Status RotatingFile::Flush() {
  if (file_ != nullptr && std::fflush(file_) != 0) {
    const int e = errno;
    std::clearerr(file_);
    return absl::UnavailableError(absl::StrCat("export file ", path_, ": ", Errno(e)));
  }
  return absl::OkStatus();
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
    if (!google::protobuf::util::FieldMaskUtil::IsValidPath<flow::Flow>(path)) {
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
  if (file_) (void)file_->Flush();
}

FlowExporter::Stats FlowExporter::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

void FlowExporter::Write(absl::string_view line, bool flow) {
  const absl::Status s = file_->WriteLine(line);
  std::lock_guard<std::mutex> lock(mu_);
  if (s.ok()) {
    stats_.exported += flow;
    return;
  }
  // Logged when the error changes (a full disk fails every line).
  if (stats_.last_error != s.message()) {
    FLOWSCOPE_LOG_ERROR("exporter {}: {}; lines are dropped until it can write again", config_.name,
                        std::string(s.message()));
  }
  ++stats_.write_errors;
  stats_.last_error = std::string(s.message());
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
  google::protobuf::FieldMask mask;
  for (const std::string& p : config_.field_mask) mask.add_paths(p);
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
          if (mask.paths_size() > 0) {
            google::protobuf::util::FieldMaskUtil::TrimMessage(mask, f);
          }
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
    if (file_) {
      if (absl::Status s = file_->Flush(); !s.ok()) {
        std::lock_guard<std::mutex> lock(mu_);
        ++stats_.write_errors;
        stats_.last_error = std::string(s.message());
      }
    }
    pause.After(read);
  }
}

}  // namespace flowscope::observer
