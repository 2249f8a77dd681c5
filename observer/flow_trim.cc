#include "observer/flow_trim.h"

#include <google/protobuf/reflection.h>

namespace flowscope::observer {

namespace pb = google::protobuf;

const std::vector<std::pair<int, FlowTrimmer::FlowClear>>& FlowTrimmer::FlowClears() {
  static const auto* table = new std::vector<std::pair<int, FlowClear>>{
      {1, +[](flow::Flow* f) { f->clear_time(); }},
      {34, +[](flow::Flow* f) { f->clear_uuid(); }},
      {41, +[](flow::Flow* f) { f->clear_emitter(); }},
      {2, +[](flow::Flow* f) { f->clear_verdict(); }},
      {3, +[](flow::Flow* f) { f->clear_drop_reason(); }},
      {35, +[](flow::Flow* f) { f->clear_auth_type(); }},
      {4, +[](flow::Flow* f) { f->clear_ethernet(); }},
      {5, +[](flow::Flow* f) { f->clear_ip(); }},
      {6, +[](flow::Flow* f) { f->clear_l4(); }},
      {39, +[](flow::Flow* f) { f->clear_tunnel(); }},
      {8, +[](flow::Flow* f) { f->clear_source(); }},
      {9, +[](flow::Flow* f) { f->clear_destination(); }},
      {10, +[](flow::Flow* f) { f->clear_type(); }},
      {11, +[](flow::Flow* f) { f->clear_node_name(); }},
      {37, +[](flow::Flow* f) { f->clear_node_labels(); }},
      {13, +[](flow::Flow* f) { f->clear_source_names(); }},
      {14, +[](flow::Flow* f) { f->clear_destination_names(); }},
      {15, +[](flow::Flow* f) { f->clear_l7(); }},
      {16, +[](flow::Flow* f) { f->clear_reply(); }},
      {19, +[](flow::Flow* f) { f->clear_event_type(); }},
      {20, +[](flow::Flow* f) { f->clear_source_service(); }},
      {21, +[](flow::Flow* f) { f->clear_destination_service(); }},
      {22, +[](flow::Flow* f) { f->clear_traffic_direction(); }},
      {23, +[](flow::Flow* f) { f->clear_policy_match_type(); }},
      {24, +[](flow::Flow* f) { f->clear_trace_observation_point(); }},
      {36, +[](flow::Flow* f) { f->clear_trace_reason(); }},
      {38, +[](flow::Flow* f) { f->clear_file(); }},
      {40, +[](flow::Flow* f) { f->clear_ip_trace_id(); }},
      {25, +[](flow::Flow* f) { f->clear_drop_reason_desc(); }},
      {26, +[](flow::Flow* f) { f->clear_is_reply(); }},
      {27, +[](flow::Flow* f) { f->clear_debug_capture_point(); }},
      {28, +[](flow::Flow* f) { f->clear_interface(); }},
      {29, +[](flow::Flow* f) { f->clear_proxy_port(); }},
      {30, +[](flow::Flow* f) { f->clear_trace_context(); }},
      {31, +[](flow::Flow* f) { f->clear_sock_xlate_point(); }},
      {32, +[](flow::Flow* f) { f->clear_socket_cookie(); }},
      {33, +[](flow::Flow* f) { f->clear_cgroup_id(); }},
      {100000, +[](flow::Flow* f) { f->clear_summary(); }},
      {150000, +[](flow::Flow* f) { f->clear_extensions(); }},
      {21001, +[](flow::Flow* f) { f->clear_egress_allowed_by(); }},
      {21002, +[](flow::Flow* f) { f->clear_ingress_allowed_by(); }},
      {21004, +[](flow::Flow* f) { f->clear_egress_denied_by(); }},
      {21005, +[](flow::Flow* f) { f->clear_ingress_denied_by(); }},
      {21006, +[](flow::Flow* f) { f->clear_policy_log(); }},
      {21007, +[](flow::Flow* f) { f->clear_aggregate(); }},
  };
  return *table;
}

const std::vector<std::pair<int, FlowTrimmer::EndpointClear>>& FlowTrimmer::EndpointClears() {
  static const auto* table = new std::vector<std::pair<int, EndpointClear>>{
      {1, +[](flow::Endpoint* e) { e->clear_id(); }},
      {2, +[](flow::Endpoint* e) { e->clear_identity(); }},
      {7, +[](flow::Endpoint* e) { e->clear_cluster_name(); }},
      {3, +[](flow::Endpoint* e) { e->clear_namespace_(); }},
      {4, +[](flow::Endpoint* e) { e->clear_labels(); }},
      {5, +[](flow::Endpoint* e) { e->clear_pod_name(); }},
      {6, +[](flow::Endpoint* e) { e->clear_workloads(); }},
  };
  return *table;
}

namespace {

template <typename Fn>
Fn ClearOf(const std::vector<std::pair<int, Fn>>& table, int number) {
  for (const auto& [n, fn] : table) {
    if (n == number) return fn;
  }
  return nullptr;
}

}  // namespace

FlowTrimmer::FlowTrimmer(const CompiledFieldMask& mask) {
  if (mask.empty()) return;
  active_ = true;
  const pb::Descriptor* d = flow::Flow::descriptor();
  for (int i = 0; i < d->field_count(); ++i) {
    const pb::FieldDescriptor* f = d->field(i);
    switch (mask.keep(i)) {
      case CompiledFieldMask::Keep::kWhole:
        break;
      case CompiledFieldMask::Keep::kClear:
        if (FlowClear fn = ClearOf(FlowClears(), f->number())) {
          clear_.push_back(fn);
        } else {
          deep_.emplace_back(f, CompiledFieldMask());  // not in the table: reflection clears it
        }
        break;
      case CompiledFieldMask::Keep::kSome: {
        const CompiledFieldMask sub = mask.Sub(i);
        const bool source = f->number() == flow::Flow::kSourceFieldNumber;
        if (source || f->number() == flow::Flow::kDestinationFieldNumber) {
          EndpointPlan& plan = source ? source_ : destination_;
          (source ? trim_source_ : trim_destination_) = true;
          const pb::Descriptor* e = flow::Endpoint::descriptor();
          for (int k = 0; k < e->field_count(); ++k) {
            if (sub.keep(k) != CompiledFieldMask::Keep::kClear) continue;  // no deeper paths
            plan.clear.push_back(ClearOf(EndpointClears(), e->field(k)->number()));
          }
        } else {
          deep_.emplace_back(f, sub);
        }
        break;
      }
    }
  }
}

void FlowTrimmer::Trim(flow::Flow* f) const {
  if (!active_) return;
  for (FlowClear fn : clear_) fn(f);
  if (trim_source_ && f->has_source()) {
    for (EndpointClear fn : source_.clear) fn(f->mutable_source());
  }
  if (trim_destination_ && f->has_destination()) {
    for (EndpointClear fn : destination_.clear) fn(f->mutable_destination());
  }
  const pb::Reflection* r = f->GetReflection();
  for (const auto& [field, sub] : deep_) {
    if (sub.empty()) {
      r->ClearField(f, field);
    } else if (r->HasField(*f, field)) {
      sub.Trim(r->MutableMessage(f, field));
    }
  }
}

}  // namespace flowscope::observer
