#include "observer/dynamic_exporters.h"

#include <google/protobuf/util/json_util.h>
#include <yaml-cpp/yaml.h>

#include <set>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "api/file_util.h"
#include "api/json.h"
#include "api/logging.h"
#include "api/text.h"

namespace flowscope::observer {
namespace {

// A YAML node as JSON, as a YAML-to-JSON converter does: plain true/false and integers become
// JSON literals, every other scalar a string.
void AppendYamlAsJson(const YAML::Node& n, std::string* out) {
  switch (n.Type()) {
    case YAML::NodeType::Map: {
      out->push_back('{');
      bool first = true;
      for (const auto& kv : n) {
        if (!first) out->push_back(',');
        first = false;
        AppendJsonString(kv.first.as<std::string>(), out);
        out->push_back(':');
        AppendYamlAsJson(kv.second, out);
      }
      out->push_back('}');
      return;
    }
    case YAML::NodeType::Sequence: {
      out->push_back('[');
      for (size_t i = 0; i < n.size(); ++i) {
        if (i > 0) out->push_back(',');
        AppendYamlAsJson(n[i], out);
      }
      out->push_back(']');
      return;
    }
    case YAML::NodeType::Scalar: {
      const std::string v = n.Scalar();
      int64_t i;
      if (n.Tag() == "?" && (v == "true" || v == "false" || absl::SimpleAtoi(v, &i))) {
        out->append(v);
      } else {
        AppendJsonString(v, out);
      }
      return;
    }
    default:
      out->append("null");
  }
}

absl::StatusOr<std::vector<flow::FlowFilter>> Filters(const YAML::Node& n,
                                                      const std::string& where) {
  std::vector<flow::FlowFilter> out;
  if (!n || n.IsNull()) return out;
  if (!n.IsSequence()) return absl::InvalidArgumentError(where + ": expected a list of filters");
  for (size_t i = 0; i < n.size(); ++i) {
    if (!n[i].IsMap()) {
      return absl::InvalidArgumentError(absl::StrCat(where, " ", i + 1, ": expected a map"));
    }
    std::string json;
    AppendYamlAsJson(n[i], &json);
    flow::FlowFilter f;
    const auto s = google::protobuf::util::JsonStringToMessage(json, &f);
    if (!s.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, " ", i + 1, ": ", Quote(std::string(s.message()))));
    }
    out.push_back(std::move(f));
  }
  return out;
}

std::string Canonical(const ExporterConfig& c) {
  std::string out = absl::StrCat(c.name, "\n", c.file_path, "\n", absl::StrJoin(c.field_mask, ","),
                                 "\n", absl::FormatTime(c.end), "\n");
  for (const auto& f : c.include) absl::StrAppend(&out, "+", f.SerializeAsString());
  for (const auto& f : c.exclude) absl::StrAppend(&out, "-", f.SerializeAsString());
  return out;
}

}  // namespace

absl::StatusOr<std::vector<ExporterConfig>> ParseFlowLogs(absl::string_view text) {
  std::vector<ExporterConfig> out;
  YAML::Node root;
  try {
    root = YAML::Load(std::string(text));
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("line ", e.mark.line + 1, ": ", e.msg));
  }
  if (!root || root.IsNull()) return out;
  if (!root.IsMap()) return absl::InvalidArgumentError("expected a map with flowLogs");
  try {
    for (const auto& kv : root) {
      if (kv.first.as<std::string>() != "flowLogs") {
        return absl::InvalidArgumentError(
            absl::StrCat("line ", kv.first.Mark().line + 1, ": unknown key \"",
                         Quote(kv.first.as<std::string>()), "\" (flowLogs)"));
      }
    }
    const YAML::Node logs = root["flowLogs"];
    if (!logs || logs.IsNull()) return out;
    if (!logs.IsSequence()) return absl::InvalidArgumentError("flowLogs: expected a list");
    std::set<std::string> names;
    for (size_t i = 0; i < logs.size(); ++i) {
      const YAML::Node e = logs[i];
      const std::string where = absl::StrCat("flowLogs ", i + 1, " (line ", e.Mark().line + 1, ")");
      if (!e.IsMap()) return absl::InvalidArgumentError(where + ": expected a map");
      ExporterConfig c;
      c.name.clear();  // required here
      for (const auto& kv : e) {
        const std::string key = kv.first.as<std::string>();
        const YAML::Node& v = kv.second;
        if (key == "name" || key == "filePath" || key == "end") {
          if (!v.IsScalar())
            return absl::InvalidArgumentError(where + ": " + key + " must be a string");
          if (key == "name") c.name = v.Scalar();
          if (key == "filePath") c.file_path = v.Scalar();
          if (key == "end") {
            std::string err;
            if (!absl::ParseTime(absl::RFC3339_full, v.Scalar(), &c.end, &err)) {
              return absl::InvalidArgumentError(
                  absl::StrCat(where, ": end \"", Quote(v.Scalar()), "\" is not an RFC 3339 time"));
            }
          }
        } else if (key == "fieldMask") {
          if (!v.IsNull() && !v.IsSequence()) {
            return absl::InvalidArgumentError(where + ": fieldMask must be a list");
          }
          for (size_t k = 0; k < v.size(); ++k) c.field_mask.push_back(v[k].as<std::string>());
        } else if (key == "includeFilters" || key == "excludeFilters") {
          auto f = Filters(v, absl::StrCat(where, ": ", key));
          if (!f.ok()) return f.status();
          (key == "includeFilters" ? c.include : c.exclude) = *std::move(f);
        } else {
          return absl::InvalidArgumentError(
              absl::StrCat(where, ": unknown key \"", Quote(key),
                           "\" (name, filePath, fieldMask, includeFilters, excludeFilters, end)"));
        }
      }
      if (c.name.empty()) return absl::InvalidArgumentError(where + ": no name");
      if (c.file_path.empty()) return absl::InvalidArgumentError(where + ": no filePath");
      if (!names.insert(c.name).second) {
        return absl::InvalidArgumentError(
            absl::StrCat(where, ": the name \"", Quote(c.name), "\" is used twice"));
      }
      out.push_back(std::move(c));
    }
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("line ", e.mark.line + 1, ": ", e.msg));
  }
  return out;
}

DynamicExporters::DynamicExporters(const Ring& ring, const EndpointTable& table,
                                   const FlowBuilder& builder, std::string path,
                                   RotationOptions rotation)
    : ring_(ring), table_(table), builder_(builder), path_(std::move(path)), rotation_(rotation) {}

DynamicExporters::~DynamicExporters() { Stop(); }

void DynamicExporters::Stop() {
  std::lock_guard<std::mutex> lock(mu_);
  exporters_.clear();  // each stops as it goes
  canonical_.clear();
}

absl::Status DynamicExporters::Maintain() {
  const std::string signature = FileSignature(path_);
  if (signature == signature_) return absl::OkStatus();
  signature_ = signature;
  auto refuse = [this](const absl::Status& s) {
    std::lock_guard<std::mutex> lock(mu_);
    ++refused_;
    FLOWSCOPE_LOG_ERROR("flow logs file {}: {}; the exporters stay as they are", path_,
                        std::string(s.message()));
    return absl::InvalidArgumentError(absl::StrCat("flow logs file ", path_, ": ", s.message()));
  };
  auto text = ReadOperatorFile(path_, "flow logs file");
  if (!text.ok()) return refuse(text.status());
  auto configs = ParseFlowLogs(*text);
  if (!configs.ok()) return refuse(configs.status());

  std::lock_guard<std::mutex> lock(mu_);
  std::set<std::string> wanted;
  for (const ExporterConfig& c : *configs) wanted.insert(c.name);
  for (auto it = canonical_.begin(); it != canonical_.end();) {
    if (wanted.count(it->first) > 0) {
      ++it;
      continue;
    }
    exporters_.erase(it->first);
    ++reconfigurations_["remove"];
    FLOWSCOPE_LOG_INFO("flow logs: removed {}", it->first);
    it = canonical_.erase(it);
  }
  std::erase_if(failed_, [&](const auto& kv) { return wanted.count(kv.first) == 0; });
  for (const ExporterConfig& c : *configs) {
    const std::string canonical = Canonical(c);
    auto it = canonical_.find(c.name);
    if (it != canonical_.end() && it->second == canonical) continue;
    const bool update = it != canonical_.end();
    exporters_.erase(c.name);  // stops the old one
    canonical_[c.name] = canonical;
    ++reconfigurations_[update ? "update" : "add"];
    auto e = std::make_unique<FlowExporter>(ring_, table_, builder_, c, rotation_);
    if (absl::Status s = e->Start(); !s.ok()) {
      failed_[c.name] = std::string(s.message());
      FLOWSCOPE_LOG_ERROR("flow logs: {}: {}", c.name, std::string(s.message()));
      continue;
    }
    failed_.erase(c.name);
    exporters_[c.name] = std::move(e);
    FLOWSCOPE_LOG_INFO("flow logs: {} {} to {}", update ? "updated" : "added", c.name, c.file_path);
  }
  last_applied_ = absl::ToDoubleSeconds(absl::Now() - absl::UnixEpoch());
  return absl::OkStatus();
}

std::vector<std::string> DynamicExporters::Active() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<std::string> out;
  for (const auto& [name, e] : exporters_) out.push_back(name);
  return out;
}

std::vector<std::pair<std::string, FlowExporter::Stats>> DynamicExporters::Stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<std::pair<std::string, FlowExporter::Stats>> out;
  for (const auto& [name, e] : exporters_) out.emplace_back(name, e->stats());
  return out;
}

void DynamicExporters::Collect(MetricsWriter& w) const {
  std::lock_guard<std::mutex> lock(mu_);
  w.Gauge("hubble_dynamic_exporter_exporters_total", "Number of configured exporters");
  w.Sample({{"status", "active"}}, static_cast<double>(exporters_.size()));
  w.Sample({{"status", "inactive"}}, static_cast<double>(failed_.size()));
  w.Gauge("hubble_dynamic_exporter_up", "1 while the exporter runs");
  for (const auto& [name, e] : exporters_) w.Sample({{"name", name}}, 1);
  for (const auto& [name, why] : failed_) w.Sample({{"name", name}}, 0);
  w.Counter("hubble_dynamic_exporter_reconfigurations_total", "Number of reconfigurations");
  for (const auto& [op, n] : reconfigurations_) w.Sample({{"op", op}}, static_cast<double>(n));
  w.Gauge("hubble_dynamic_exporter_config_last_applied",
          "When the flow logs file was last applied (seconds since the epoch)");
  w.Sample(last_applied_);
  w.Counter("flowscope_dynamic_exporter_config_refused_total",
            "Flow logs files refused (unreadable or invalid): the exporters stayed as they were");
  w.Sample(static_cast<double>(refused_));
}

}  // namespace flowscope::observer
