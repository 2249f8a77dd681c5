// The benchmark figures the runner knows, one entry per PERFORMANCE.md figure. Each issue that
// adds a figure adds its function here and to figures.cc. Run from the runner's main thread.
#ifndef FLOWSCOPE_TESTS_BENCH_FIGURES_H_
#define FLOWSCOPE_TESTS_BENCH_FIGURES_H_

#include <functional>
#include <string>
#include <vector>

#include "tests/bench/report.h"

namespace flowscope::bench {

struct Options {
  int runs = 5;  // repetitions per measurement; the report shows medians
};

struct Figure {
  std::string id;     // "B2"
  std::string title;  // what it measures, for --list
  // Returns one or more results (a figure may report several rows, e.g. 0 and 8 readers).
  std::function<std::vector<FigureResult>(const Options&)> run;
};

std::vector<Figure> AllFigures();

// Per-area figure lists (ring_figures.cc, ...).
std::vector<Figure> RingFigures();
std::vector<Figure> ObserverFigures();
std::vector<Figure> CliFigures();
std::vector<Figure> RelayFigures();
std::vector<Figure> KubeFigures();
std::vector<Figure> HistoryFigures();
std::vector<Figure> ScaleFigures();
std::vector<Figure> KernelFigures();

}  // namespace flowscope::bench

#endif  // FLOWSCOPE_TESTS_BENCH_FIGURES_H_
