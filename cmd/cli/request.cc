#include "cmd/cli/request.h"

#include <google/protobuf/util/json_util.h>

#include <limits>

#include "absl/strings/str_cat.h"
#include "api/flows_request.h"
#include "api/time_parse.h"

namespace flowscope::cli {

absl::StatusOr<std::vector<flow::FlowFilter>> ParseRawFilters(const std::string& text) {
  std::vector<flow::FlowFilter> out;
  // Split concatenated objects at the top-level braces.
  int depth = 0;
  bool in_string = false;
  size_t start = std::string::npos;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\')
        ++i;
      else if (c == '"')
        in_string = false;
      continue;
    }
    if (c == '"') in_string = true;
    if (c == '{' && depth++ == 0) start = i;
    if (c == '}' && --depth == 0) {
      flow::FlowFilter f;
      const std::string obj = text.substr(start, i - start + 1);
      if (auto s = google::protobuf::util::JsonStringToMessage(obj, &f); !s.ok()) {
        return absl::InvalidArgumentError(
            absl::StrCat("invalid filter ", obj, ": ", s.message().as_string()));
      }
      out.push_back(std::move(f));
    }
    if (depth < 0) break;
  }
  if (depth != 0 || in_string || out.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("invalid filter \"", text, "\": expected JSON FlowFilter objects"));
  }
  return out;
}

const std::vector<std::string>& DefaultFieldMask() {
  static const auto* paths = new std::vector<std::string>{"time",
                                                          "verdict",
                                                          "ethernet",
                                                          "IP",
                                                          "l4",
                                                          "source.identity",
                                                          "source.namespace",
                                                          "source.pod_name",
                                                          "destination.identity",
                                                          "destination.namespace",
                                                          "destination.pod_name",
                                                          "Type",
                                                          "node_name",
                                                          "l7",
                                                          "event_type",
                                                          "source_service",
                                                          "destination_service",
                                                          "is_reply",
                                                          "Summary",
                                                          "ip_trace_id"};
  return *paths;
}

namespace {

// --since and --until into the request (--until only without --follow).
absl::Status SetTimes(const ObserveOptions& o, absl::Time now, ::observer::GetFlowsRequest* req) {
  auto set_time = [&](const std::string& text, const char* flag,
                      google::protobuf::Timestamp* ts) -> absl::Status {
    auto t = ParseHubbleTime(text, now);
    if (!t.ok()) return absl::InvalidArgumentError(absl::StrCat(flag, ": ", t.status().message()));
    const int64_t ns = absl::ToUnixNanos(*t);
    ts->set_seconds(ns / 1'000'000'000);
    ts->set_nanos(static_cast<int32_t>(ns % 1'000'000'000));
    return absl::OkStatus();
  };
  if (!o.since.empty()) {
    if (absl::Status s = set_time(o.since, "--since", req->mutable_since()); !s.ok()) return s;
  }
  if (!o.until.empty() && !o.follow) {
    if (absl::Status s = set_time(o.until, "--until", req->mutable_until()); !s.ok()) return s;
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<::observer::GetFlowsRequest> BuildEventsRequest(const ObserveOptions& o,
                                                               absl::Time now) {
  if (o.follow && o.printer.format == Format::kTable) {
    return absl::InvalidArgumentError("table output format is not compatible with follow mode");
  }
  ::observer::GetFlowsRequest req;
  req.set_follow(o.follow);
  if (absl::Status s = SetTimes(o, now, &req); !s.ok()) return s;
  uint64_t number = o.last.value_or(0);
  if (!req.has_since() && !req.has_until()) {
    if (o.all) {
      number = std::numeric_limits<uint64_t>::max();
    } else if (number == 0) {
      number = 20;  // Hubble's default count of events
    }
  }
  req.set_number(number);
  return req;
}

absl::StatusOr<::observer::GetFlowsRequest> BuildRequest(const ObserveOptions& o,
                                                         const Filters& filters, absl::Time now) {
  if (o.first && (o.last || o.all || o.follow)) {
    return absl::InvalidArgumentError("--first cannot be combined with --last, --all or --follow");
  }
  if (o.last && o.all) return absl::InvalidArgumentError("--last cannot be combined with --all");
  if (o.follow && o.printer.format == Format::kTable) {
    return absl::InvalidArgumentError("--output table cannot be combined with --follow");
  }
  ::observer::GetFlowsRequest req;
  const bool times = !o.since.empty() || !o.until.empty();
  if (o.first) {
    req.set_first(true);
    req.set_number(*o.first);
  } else if (o.all) {
    req.set_number(std::numeric_limits<uint64_t>::max());
  } else if (o.last) {
    req.set_number(*o.last);
  } else if (o.follow || times) {
    req.set_number(0);
  } else {
    req.set_number(20);
  }
  req.set_follow(o.follow);
  RequestFlowExtensions(&req);  // this CLI resolves flowscope's types (Hubble's servers ignore it)
  if (absl::Status s = SetTimes(o, now, &req); !s.ok()) return s;
  if (!o.field_mask.empty()) {
    if (o.printer.format != Format::kJson) {
      return absl::InvalidArgumentError(
          "--field-mask can only be used with --output json or jsonpb");
    }
    for (const std::string& p : o.field_mask) req.mutable_field_mask()->add_paths(p);
  } else if (o.use_default_field_masks && o.printer.format != Format::kJson) {
    for (const std::string& p : DefaultFieldMask()) req.mutable_field_mask()->add_paths(p);
    // Beyond Hubble's mask: what a policy-verdict line prints (Hubble's mask leaves these out,
    // so its lines read "policy-verdict:none TRAFFIC_DIRECTION_UNKNOWN" and name no policy).
    req.mutable_field_mask()->add_paths("traffic_direction");
    req.mutable_field_mask()->add_paths("policy_match_type");
    // flowscope's KernelDrop, which makes a kernel drop's type "kernel-drop".
    req.mutable_field_mask()->add_paths("extensions");
    if (o.printer.print_policy_names) {
      for (const char* p :
           {"egress_allowed_by", "ingress_allowed_by", "egress_denied_by", "ingress_denied_by"}) {
        req.mutable_field_mask()->add_paths(p);
      }
    }
  }
  for (const auto& f : filters.whitelist) *req.add_whitelist() = f;
  for (const auto& f : filters.blacklist) *req.add_blacklist() = f;
  for (const std::string& raw : o.allowlist) {
    auto parsed = ParseRawFilters(raw);
    if (!parsed.ok())
      return absl::InvalidArgumentError(absl::StrCat("--allowlist: ", parsed.status().message()));
    for (auto& f : *parsed) *req.add_whitelist() = std::move(f);
  }
  for (const std::string& raw : o.denylist) {
    auto parsed = ParseRawFilters(raw);
    if (!parsed.ok())
      return absl::InvalidArgumentError(absl::StrCat("--denylist: ", parsed.status().message()));
    for (auto& f : *parsed) *req.add_blacklist() = std::move(f);
  }
  return req;
}

}  // namespace flowscope::cli
