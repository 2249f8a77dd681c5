#include "observer/endpoint_source.h"

#include <sys/stat.h>
#include <yaml-cpp/yaml.h>

#include <cerrno>
#include <fstream>
#include <sstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "api/logging.h"

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
  if (doc.IsNull()) return ParsedEndpoints{};
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
  struct stat st {};
  if (stat(path_.c_str(), &st) != 0) {
    return absl::ErrnoToStatus(errno, absl::StrCat("endpoints file ", path_));
  }
  std::ifstream in(path_);
  std::stringstream text;
  text << in.rdbuf();
  if (!in) return absl::ErrnoToStatus(errno, absl::StrCat("reading endpoints file ", path_));
  auto parsed = ParseEndpointList(text.str());
  if (!parsed.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("endpoints file ", path_, ": ", parsed.status().message()));
  }
  std::vector<std::string> problems = parsed->errors;
  for (std::string& e : table_.Update(parsed->endpoints)) problems.push_back(std::move(e));
  for (const std::string& p : problems) FLOWSCOPE_LOG_WARN("endpoints file {}: {}", path_, p);
  std::lock_guard<std::mutex> lock(mu_);
  last_signature_ =
      absl::StrCat(st.st_mtim.tv_sec, ".", st.st_mtim.tv_nsec, ":", st.st_size, ":", st.st_ino);
  ++loads_;
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
  std::string reported_error;
  while (true) {
    {
      std::unique_lock<std::mutex> lock(mu_);
      wake_.wait_for(lock, absl::ToChronoMilliseconds(poll_interval_), [this] { return stop_; });
      if (stop_) return;
    }
    struct stat st {};
    std::string signature;
    if (stat(path_.c_str(), &st) == 0) {
      signature =
          absl::StrCat(st.st_mtim.tv_sec, ".", st.st_mtim.tv_nsec, ":", st.st_size, ":", st.st_ino);
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (signature == last_signature_) continue;
    }
    // Changed (or gone): reload; a missing or unreadable file keeps the last good endpoints.
    auto result = LoadOnce();
    if (!result.ok()) {
      const std::string error(result.status().message());
      if (error != reported_error) FLOWSCOPE_LOG_WARN("{}; keeping the last endpoints", error);
      reported_error = error;
      std::lock_guard<std::mutex> lock(mu_);
      last_signature_ = signature;  // do not retry until it changes again
    } else {
      reported_error.clear();
    }
  }
}

}  // namespace flowscope::observer
