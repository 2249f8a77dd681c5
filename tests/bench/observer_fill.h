// Synthetic contents for benchmarks: 1,000 pods in 10 namespaces, and a ring filled with flows
// between random pairs of them. Benchmark thread only.
#ifndef FLOWSCOPE_TESTS_BENCH_OBSERVER_FILL_H_
#define FLOWSCOPE_TESTS_BENCH_OBSERVER_FILL_H_

#include <cstdint>

#include "observer/endpoint_table.h"
#include "observer/flow_query.h"

namespace flowscope::bench {

void AddPods(observer::EndpointTable& table);
void FillRing(observer::Ring& ring, observer::EndpointTable& table, uint64_t n);

}  // namespace flowscope::bench

#endif  // FLOWSCOPE_TESTS_BENCH_OBSERVER_FILL_H_
