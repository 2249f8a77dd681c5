// Synthetic contents for benchmarks: 1,000 pods in 10 namespaces, and a ring filled with flows
// between random pairs of them. Benchmark thread only.
#ifndef FLOWSCOPE_TESTS_BENCH_OBSERVER_FILL_H_
#define FLOWSCOPE_TESTS_BENCH_OBSERVER_FILL_H_

#include <cstdint>

#include "observer/endpoint_table.h"
#include "observer/flow_query.h"
#include "observer/flow_record.h"

namespace flowscope::bench {

void AddPods(observer::EndpointTable& table);
void FillRing(observer::Ring& ring, observer::EndpointTable& table, uint64_t n);

// The i-th synthetic flow (between two of AddPods' pods, chosen pseudo-randomly by i) at
// `time_ns`.
observer::FlowRecord BenchRecord(observer::EndpointTable::Resolver& res, uint64_t i,
                                 uint64_t time_ns);

}  // namespace flowscope::bench

#endif  // FLOWSCOPE_TESTS_BENCH_OBSERVER_FILL_H_
