#include "observer/kube_objects.h"

#include <nlohmann/json.hpp>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"

namespace flowscope::observer {
namespace {

using nlohmann::json;

// Reads object fields with their expected types; the first problem is kept, naming the field.
class Reader {
 public:
  Reader(const json& root, std::string what) : root_(root), what_(std::move(what)) {}

  // The member at a dotted path, or nullptr when absent (or null). Wrong container types along
  // the path are errors.
  const json* At(const std::string& path) {
    const json* v = &root_;
    size_t start = 0;
    while (start <= path.size()) {
      const size_t dot = path.find('.', start);
      const std::string part = path.substr(start, dot - start);
      if (!v->is_object()) {
        Fail(path, "is not inside an object");
        return nullptr;
      }
      auto it = v->find(part);
      if (it == v->end() || it->is_null()) return nullptr;
      v = &*it;
      if (dot == std::string::npos) break;
      start = dot + 1;
    }
    return v;
  }

  std::string String(const std::string& path, bool required = false) {
    const json* v = At(path);
    if (v == nullptr) {
      if (required) Fail(path, "is missing");
      return "";
    }
    if (!v->is_string()) {
      Fail(path, "is not a string");
      return "";
    }
    return v->get<std::string>();
  }

  bool Bool(const std::string& path) {
    const json* v = At(path);
    if (v == nullptr) return false;
    if (!v->is_boolean()) {
      Fail(path, "is not a boolean");
      return false;
    }
    return v->get<bool>();
  }

  // A map of strings as "key=value", sorted (JSON objects iterate in key order).
  std::vector<std::string> StringMap(const std::string& path) {
    std::vector<std::string> out;
    const json* v = At(path);
    if (v == nullptr) return out;
    if (!v->is_object()) {
      Fail(path, "is not a map");
      return out;
    }
    for (auto it = v->begin(); it != v->end(); ++it) {
      if (!it.value().is_string()) {
        Fail(absl::StrCat(path, ".", it.key()), "is not a string");
        return {};
      }
      out.push_back(absl::StrCat(it.key(), "=", it.value().get<std::string>()));
    }
    return out;
  }

  const json* Array(const std::string& path) {
    const json* v = At(path);
    if (v != nullptr && !v->is_array()) {
      Fail(path, "is not a list");
      return nullptr;
    }
    return v;
  }

  void Fail(const std::string& path, const std::string& problem) {
    if (error_.empty()) error_ = absl::StrCat(what_, ": ", path, " ", problem);
  }
  absl::Status status() const {
    return error_.empty() ? absl::OkStatus() : absl::InvalidArgumentError(error_);
  }
  void set_what(std::string what) { what_ = std::move(what); }

 private:
  const json& root_;
  std::string what_;
  std::string error_;
};

// "kind namespace/name" for messages, as far as it can be read.
std::string Describe(const json& o, const char* kind) {
  std::string out = kind;
  if (o.is_object() && o.contains("metadata") && o["metadata"].is_object()) {
    const json& m = o["metadata"];
    if (m.contains("namespace") && m["namespace"].is_string()) {
      absl::StrAppend(&out, " ", m["namespace"].get<std::string>(), "/");
    } else {
      out += " ";
    }
    if (m.contains("name") && m["name"].is_string()) out += m["name"].get<std::string>();
  }
  return out;
}

absl::Status NotAnObject(const char* kind) {
  return absl::InvalidArgumentError(absl::StrCat(kind, ": not a JSON object"));
}

}  // namespace

absl::StatusOr<KubeObjectRef> ParseObjectRef(const json& o, bool namespaced) {
  if (!o.is_object()) return NotAnObject("object");
  Reader r(o, "object");
  KubeObjectRef ref;
  const std::string name = r.String("metadata.name", true);
  const std::string ns = namespaced ? r.String("metadata.namespace", true) : "";
  ref.key = namespaced ? absl::StrCat(ns, "/", name) : name;
  ref.resource_version = r.String("metadata.resourceVersion");
  if (absl::Status s = r.status(); !s.ok()) return s;
  return ref;
}

std::pair<std::string, std::string> DeriveWorkload(const std::string& owner_kind,
                                                   const std::string& owner_name,
                                                   const std::string& pod_template_hash) {
  if (owner_kind.empty() || owner_name.empty()) return {"", ""};
  if (owner_kind == "ReplicaSet" && !pod_template_hash.empty() &&
      absl::EndsWith(owner_name, absl::StrCat("-", pod_template_hash)) &&
      owner_name.size() > pod_template_hash.size() + 1) {
    return {owner_name.substr(0, owner_name.size() - pod_template_hash.size() - 1), "Deployment"};
  }
  if (owner_kind == "Job") {
    const size_t dash = owner_name.rfind('-');
    if (dash != std::string::npos && dash > 0 && dash + 1 < owner_name.size()) {
      bool digits = true;
      for (size_t i = dash + 1; i < owner_name.size(); ++i) {
        digits = digits && absl::ascii_isdigit(static_cast<unsigned char>(owner_name[i]));
      }
      if (digits) return {owner_name.substr(0, dash), "CronJob"};
    }
  }
  return {owner_name, owner_kind};
}

absl::StatusOr<KubePod> ParsePod(const json& o) {
  if (!o.is_object()) return NotAnObject("pod");
  Reader r(o, Describe(o, "pod"));
  KubePod p;
  p.namespace_name = r.String("metadata.namespace", true);
  p.name = r.String("metadata.name", true);
  p.labels = r.StringMap("metadata.labels");
  if (const std::string created = r.String("metadata.creationTimestamp"); !created.empty()) {
    absl::Time t;
    std::string error;
    if (!absl::ParseTime(absl::RFC3339_full, created, &t, &error)) {
      r.Fail("metadata.creationTimestamp", "is not an RFC 3339 time");
    } else {
      p.created = absl::ToUnixSeconds(t);
    }
  }
  p.deleting = r.At("metadata.deletionTimestamp") != nullptr;
  p.node_name = r.String("spec.nodeName");
  p.service_account = r.String("spec.serviceAccountName");
  p.host_network = r.Bool("spec.hostNetwork");
  const std::string phase = r.String("status.phase");
  p.terminated = phase == "Succeeded" || phase == "Failed";
  if (const json* ips = r.Array("status.podIPs"); ips != nullptr) {
    for (const json& e : *ips) {
      if (!e.is_object() || !e.contains("ip") || !e["ip"].is_string()) {
        r.Fail("status.podIPs", "has an entry without an ip string");
        break;
      }
      p.ips.push_back(e["ip"].get<std::string>());
    }
  }
  if (p.ips.empty()) {
    if (std::string ip = r.String("status.podIP"); !ip.empty()) p.ips.push_back(std::move(ip));
  }
  if (const json* owners = r.Array("metadata.ownerReferences"); owners != nullptr) {
    for (const json& e : *owners) {
      if (!e.is_object()) {
        r.Fail("metadata.ownerReferences", "has an entry that is not an object");
        break;
      }
      const auto controller = e.find("controller");
      if (controller == e.end() || !controller->is_boolean() || !controller->get<bool>()) continue;
      const auto kind = e.find("kind");
      const auto name = e.find("name");
      if (kind == e.end() || !kind->is_string() || name == e.end() || !name->is_string()) {
        r.Fail("metadata.ownerReferences", "has a controller without kind and name strings");
        break;
      }
      std::string hash;
      for (const std::string& l : p.labels) {
        if (absl::StartsWith(l, "pod-template-hash=")) hash = l.substr(18);
      }
      std::tie(p.workload_name, p.workload_kind) =
          DeriveWorkload(kind->get<std::string>(), name->get<std::string>(), hash);
      break;
    }
  }
  if (absl::Status s = r.status(); !s.ok()) return s;
  return p;
}

absl::StatusOr<KubeNamespace> ParseNamespace(const json& o) {
  if (!o.is_object()) return NotAnObject("namespace");
  Reader r(o, Describe(o, "namespace"));
  KubeNamespace n;
  n.name = r.String("metadata.name", true);
  n.labels = r.StringMap("metadata.labels");
  if (absl::Status s = r.status(); !s.ok()) return s;
  return n;
}

absl::StatusOr<KubeNode> ParseNode(const json& o) {
  if (!o.is_object()) return NotAnObject("node");
  Reader r(o, Describe(o, "node"));
  KubeNode n;
  n.name = r.String("metadata.name", true);
  n.labels = r.StringMap("metadata.labels");
  if (const json* addrs = r.Array("status.addresses"); addrs != nullptr) {
    for (const json& a : *addrs) {
      if (!a.is_object() || !a.contains("type") || !a["type"].is_string() ||
          !a.contains("address") || !a["address"].is_string()) {
        r.Fail("status.addresses", "has an entry without type and address strings");
        break;
      }
      const std::string type = a["type"].get<std::string>();
      if (type == "InternalIP" || type == "ExternalIP") {
        n.ips.push_back(a["address"].get<std::string>());
      }
    }
  }
  if (absl::Status s = r.status(); !s.ok()) return s;
  return n;
}

absl::StatusOr<KubeService> ParseService(const json& o) {
  if (!o.is_object()) return NotAnObject("service");
  Reader r(o, Describe(o, "service"));
  KubeService svc;
  svc.namespace_name = r.String("metadata.namespace", true);
  svc.name = r.String("metadata.name", true);
  if (const json* ips = r.Array("spec.clusterIPs"); ips != nullptr) {
    for (const json& ip : *ips) {
      if (!ip.is_string()) {
        r.Fail("spec.clusterIPs", "has an entry that is not a string");
        break;
      }
      if (ip.get<std::string>() != "None" && !ip.get<std::string>().empty()) {
        svc.cluster_ips.push_back(ip.get<std::string>());
      }
    }
  }
  if (svc.cluster_ips.empty()) {
    const std::string ip = r.String("spec.clusterIP");
    if (!ip.empty() && ip != "None") svc.cluster_ips.push_back(ip);
  }
  if (const json* ports = r.Array("spec.ports"); ports != nullptr) {
    for (const json& p : *ports) {
      if (!p.is_object() || !p.contains("port") || !p["port"].is_number_integer() ||
          p["port"].get<int64_t>() < 1 || p["port"].get<int64_t>() > 65535) {
        r.Fail("spec.ports", "has an entry without a port number in 1..65535");
        break;
      }
      KubeServicePort sp;
      sp.port = static_cast<uint16_t>(p["port"].get<int64_t>());
      sp.protocol = p.contains("protocol") && p["protocol"].is_string()
                        ? p["protocol"].get<std::string>()
                        : "TCP";
      svc.ports.push_back(std::move(sp));
    }
  }
  if (absl::Status s = r.status(); !s.ok()) return s;
  return svc;
}

}  // namespace flowscope::observer
