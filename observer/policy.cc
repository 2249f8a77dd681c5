#include "observer/policy.h"

#include <yaml-cpp/yaml.h>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace flowscope::observer {

absl::StatusOr<std::vector<PolicyRule>> ParsePolicy(absl::string_view text) {
  YAML::Node doc;
  try {
    doc = YAML::Load(std::string(text));
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("policy is not valid JSON or YAML: ", e.what()));
  }
  std::vector<PolicyRule> rules;
  if (doc.IsNull()) return rules;
  if (!doc.IsMap() || !doc["deny"] || !(doc["deny"].IsSequence() || doc["deny"].IsNull())) {
    return absl::InvalidArgumentError("policy must be a map with a `deny:` list");
  }
  int index = 0;
  for (const auto& entry : doc["deny"]) {
    ++index;
    const std::string where = absl::StrCat("deny rule ", index);
    if (!entry.IsMap()) return absl::InvalidArgumentError(absl::StrCat(where, ": not a map"));
    PolicyRule r;
    for (const auto& kv : entry) {
      const std::string key = kv.first.as<std::string>();
      if (!kv.second.IsScalar()) {
        return absl::InvalidArgumentError(absl::StrCat(where, ": ", key, " must be a value"));
      }
      const std::string value = kv.second.as<std::string>();
      if (key == "from") {
        r.from = value;
      } else if (key == "to") {
        r.to = value;
      } else if (key == "fromPod" || key == "from_pod") {
        r.from_pod = value;
      } else if (key == "toPod" || key == "to_pod") {
        r.to_pod = value;
      } else if (key == "protocol") {
        r.protocol = value;
      } else if (key == "port") {
        if (!absl::SimpleAtoi(value, &r.port)) {
          return absl::InvalidArgumentError(
              absl::StrCat(where, ": port \"", value, "\" is not a number"));
        }
      } else {
        return absl::InvalidArgumentError(absl::StrCat(where, ": unknown key \"", key, "\""));
      }
    }
    if ((!r.from.empty() && !r.from_pod.empty()) || (!r.to.empty() && !r.to_pod.empty())) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": give either an address or a pod for each side, not both"));
    }
    for (std::string* pod : {&r.from_pod, &r.to_pod}) {
      if (!pod->empty() && !absl::StrContains(*pod, "/")) *pod = "default/" + *pod;
    }
    // Validate addresses, protocol and port now.
    if (auto check = bpf::DenyRule::Parse(r.from, r.to, r.protocol, r.port); !check.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": ", check.status().message()));
    }
    rules.push_back(std::move(r));
  }
  return rules;
}

absl::StatusOr<std::vector<bpf::DenyRule>> ResolvePolicy(const std::vector<PolicyRule>& rules,
                                                         const EndpointTable& table) {
  const auto addresses = table.Addresses();
  // The addresses of the pods a "ns/prefix" names.
  auto pod_addrs = [&](const std::string& pod) {
    const size_t slash = pod.find('/');
    const std::string ns = pod.substr(0, slash);
    const std::string prefix = pod.substr(slash + 1);
    std::vector<std::string> out;
    for (const auto& [addr, id] : addresses) {
      const Endpoint& e = table.Get(id);
      if (e.namespace_name == ns && absl::StartsWith(e.pod_name, prefix) && !e.pod_name.empty()) {
        out.push_back(AddrToString(addr));
      }
    }
    return out;
  };
  std::vector<bpf::DenyRule> out;
  for (const PolicyRule& r : rules) {
    const std::vector<std::string> froms =
        r.from_pod.empty() ? std::vector{r.from} : pod_addrs(r.from_pod);
    const std::vector<std::string> tos = r.to_pod.empty() ? std::vector{r.to} : pod_addrs(r.to_pod);
    for (const std::string& f : froms) {
      for (const std::string& t : tos) {
        auto rule = bpf::DenyRule::Parse(f, t, r.protocol, r.port);
        if (!rule.ok()) {
          if (rule.status().message().find("mixes an IPv4 and an IPv6") !=
              absl::string_view::npos) {
            continue;  // a dual-stack pod pair: only same-family combinations make sense
          }
          return rule.status();
        }
        out.push_back(*rule);
      }
    }
  }
  if (out.size() > FS_MAX_DENY_RULES) {
    return absl::ResourceExhaustedError(absl::StrCat("the policy expands to ", out.size(),
                                                     " datapath rules; at most ", FS_MAX_DENY_RULES,
                                                     " are supported"));
  }
  return out;
}

}  // namespace flowscope::observer
