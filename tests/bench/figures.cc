#include "tests/bench/figures.h"

namespace flowscope::bench {

std::vector<Figure> AllFigures() {
  std::vector<Figure> figures;
  for (auto& f : RingFigures()) figures.push_back(std::move(f));
  for (auto& f : ObserverFigures()) figures.push_back(std::move(f));
  for (auto& f : RelayFigures()) figures.push_back(std::move(f));
  for (auto& f : CliFigures()) figures.push_back(std::move(f));
  for (auto& f : KubeFigures()) figures.push_back(std::move(f));
  for (auto& f : HistoryFigures()) figures.push_back(std::move(f));
  for (auto& f : ScaleFigures()) figures.push_back(std::move(f));
  for (auto& f : KernelFigures()) figures.push_back(std::move(f));
  return figures;
}

}  // namespace flowscope::bench
