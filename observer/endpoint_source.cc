#include "observer/endpoint_source.h"

#include <yaml-cpp/yaml.h>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "api/file_util.h"
#include "api/logging.h"
#include "api/memory.h"
#include "api/status_macros.h"

namespace flowscope::observer {
namespace {

std::string Scalar(const YAML::Node& n, absl::string_view key) {
  if (!n.IsScalar()) throw YAML::Exception(n.Mark(), absl::StrCat(key, " must be a string"));
  return n.as<std::string>();
}

// One entry; throws YAML::Exception (with the problem) for a bad one.
EndpointInfo ParseEntry(const YAML::Node& n) {
  if (!n.IsMap()) throw YAML::Exception(n.Mark(), "an entry must be a map");
  EndpointInfo info;
  for (const auto& kv : n) {
    const std::string key = kv.first.as<std::string>();
    const YAML::Node& v = kv.second;
    if (key == "ip") {
      info.ips.push_back(Scalar(v, key));
    } else if (key == "ips") {
      if (!v.IsSequence()) throw YAML::Exception(v.Mark(), "ips must be a list");
      for (const auto& ip : v) info.ips.push_back(Scalar(ip, "ips"));
    } else if (key == "namespace") {
      info.namespace_name = Scalar(v, key);
    } else if (key == "pod" || key == "pod_name") {
      info.pod_name = Scalar(v, key);
    } else if (key == "labels") {
      if (v.IsMap()) {
        for (const auto& l : v) {
          info.labels.push_back(
              absl::StrCat(l.first.as<std::string>(), "=", Scalar(l.second, "label")));
        }
      } else if (v.IsSequence()) {
        for (const auto& l : v) info.labels.push_back(Scalar(l, "label"));
      } else {
        throw YAML::Exception(v.Mark(), "labels must be a map or a list of key=value");
      }
    } else if (key == "workload") {
      if (v.IsMap()) {
        if (v["name"]) info.workload_name = Scalar(v["name"], "workload.name");
        if (v["kind"]) info.workload_kind = Scalar(v["kind"], "workload.kind");
      } else {
        info.workload_name = Scalar(v, key);
      }
    } else if (key == "workload_kind") {
      info.workload_kind = Scalar(v, key);
    } else if (key == "node") {
      info.node_name = Scalar(v, key);
    } else if (key == "cluster") {
      info.cluster_name = Scalar(v, key);
    } else if (key == "identity") {
      uint32_t id;
      if (!absl::SimpleAtoi(Scalar(v, key), &id)) {
        throw YAML::Exception(v.Mark(), "identity must be a number");
      }
      info.identity = id;
    } else {
      throw YAML::Exception(kv.first.Mark(), absl::StrCat("unknown key \"", key, "\""));
    }
  }
  for (const std::string& ip : info.ips) {
    if (auto a = ParseAddr(ip); !a.ok())
      throw YAML::Exception(n.Mark(), std::string(a.status().message()));
  }
  return info;
}

}  // namespace

absl::StatusOr<ParsedEndpoints> ParseEndpointList(absl::string_view text) {
  YAML::Node doc;
  try {
    doc = YAML::Load(std::string(text));
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("not valid JSON or YAML: ", e.what()));
  }
  if (doc.IsMap() && doc["endpoints"]) doc = doc["endpoints"];
  if (doc.IsNull()) {
    // A file caught half-written, or emptied by mistake, must not forget every endpoint.
    return absl::InvalidArgumentError("the file is empty; write `[]` to remove every endpoint");
  }
  if (!doc.IsSequence()) {
    return absl::InvalidArgumentError("expected a list of endpoints (or a map with `endpoints:`)");
  }
  ParsedEndpoints out;
  size_t index = 0;
  for (const auto& entry : doc) {
    ++index;
    try {
      out.endpoints.push_back(ParseEntry(entry));
    } catch (const YAML::Exception& e) {
      out.errors.push_back(
          absl::StrCat("entry ", index, " (line ", e.mark.line + 1, "): ", e.msg, "; skipped"));
    }
  }
  return out;
}

FileEndpointSource::FileEndpointSource(std::string path, EndpointTable& table,
                                       absl::Duration poll_interval)
    : path_(std::move(path)), table_(table), poll_interval_(poll_interval) {}

FileEndpointSource::~FileEndpointSource() { Stop(); }

uint64_t FileEndpointSource::loads() const {
  std::lock_guard<std::mutex> lock(mu_);
  return loads_;
}

absl::StatusOr<std::vector<std::string>> FileEndpointSource::LoadOnce() {
  const std::string signature = FileSignature(path_);
  absl::StatusOr<std::vector<std::string>> result = Load();
  // The parsed document is gone: give its pages back (a large file's peak is ~10x the table).
  ReturnFreedMemory();
  std::lock_guard<std::mutex> lock(mu_);
  last_signature_ = signature;  // a bad file is not retried until it changes again
  ++attempts_;
  if (result.ok()) {
    ++loads_;
    last_error_.clear();
  } else {
    last_error_ = std::string(result.status().message());
  }
  return result;
}

absl::StatusOr<std::vector<std::string>> FileEndpointSource::Load() {
  FLOWSCOPE_ASSIGN_OR_RETURN(const std::string text, ReadOperatorFile(path_, "endpoints file"));
  auto parsed = ParseEndpointList(text);
  if (!parsed.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("endpoints file ", path_, ": ", parsed.status().message()));
  }
  if (parsed->endpoints.empty() && !parsed->errors.empty()) {
    // Every entry is bad (a format change, a broken generator): emptying the table would
    // unname every flow and unbind every pod rule of the policy.
    return absl::InvalidArgumentError(
        absl::StrCat("endpoints file ", path_, ": no valid entry (", parsed->errors.size(),
                     " skipped; the first: ", parsed->errors[0], ")"));
  }
  std::vector<std::string> problems = parsed->errors;
  for (std::string& e : table_.Update(parsed->endpoints)) problems.push_back(std::move(e));
  for (const std::string& p : problems) FLOWSCOPE_LOG_WARN("endpoints file {}: {}", path_, p);
  return problems;
}

absl::Status FileEndpointSource::Start() {
  auto first = LoadOnce();
  if (!first.ok()) return first.status();
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = false;
  }
  thread_ = std::thread([this] { Poll(); });
  return absl::OkStatus();
}

void FileEndpointSource::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void FileEndpointSource::Poll() {
  while (true) {
    {
      std::unique_lock<std::mutex> lock(mu_);
      wake_.wait_for(lock, absl::ToChronoMilliseconds(poll_interval_), [this] { return stop_; });
      if (stop_) return;
      if (FileSignature(path_) == last_signature_) continue;
    }
    // Changed (or gone): reload; a missing, unreadable or invalid file keeps the last good
    // endpoints.
    if (auto result = LoadOnce(); !result.ok()) {
      FLOWSCOPE_LOG_ERROR("{}; keeping the last good endpoints",
                          std::string(result.status().message()));
    }
  }
}

std::string FileEndpointSource::last_error() const {
  std::lock_guard<std::mutex> lock(mu_);
  return last_error_;
}

uint64_t FileEndpointSource::attempts() const {
  std::lock_guard<std::mutex> lock(mu_);
  return attempts_;
}

}  // namespace flowscope::observer
