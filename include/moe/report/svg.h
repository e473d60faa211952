// A small SVG chart library for the training report: each chart is a function from plain data to
// one self-contained <svg> element (no scripts, no external fonts or images, generic font family
// only), deterministic byte for byte for the same input.
//
// Dims: N points on the x axis (epochs), S series, R x C heat-map cells, E experts, H x W pixels.
//
// Every string that comes from data (titles, series, row and column names) is escaped with
// escape_xml, so a token such as `<script>` or a class name with quotes is drawn as text and can
// never become markup. Non-finite values are skipped (a gap in a line, a blank heat-map cell).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace moe::report {

// Escapes & < > " ' as character references and replaces control characters other than tab and
// newline (not allowed in XML 1.0) with U+FFFD, so the result is safe as element text and as a
// quoted attribute value in both HTML and SVG.
std::string escape_xml(std::string_view text);

// Shortest readable form of a value for labels: 4 significant digits (whole numbers from 1e4 to
// 1e7), no "-0", "nan" spelled out.
std::string format_number(double value);

// Evenly spaced "nice" tick values (steps of 1, 2 or 5 x 10^n) covering [lo, hi], about `target`
// of them. lo == hi widens the range so there is always more than one tick.
std::vector<double> nice_ticks(double lo, double hi, int target);

// Colour of series `index` in a fixed categorical palette (10 distinct colours, then hues spread
// by the golden angle), as "#rrggbb".
std::string series_color(int64_t index);

// A sequential colour scale from pale to dark for t in [0, 1] (clamped), as "#rrggbb".
std::string scale_color(double t);

// Sizes shared by all charts, in CSS pixels.
struct ChartFrame {
  std::string title;
  std::string x_label;
  std::string y_label;
  int width = 640;
  int height = 300;
};

struct Series {
  std::string name;
  std::vector<double> x;  // [N]
  std::vector<double> y;  // [N]
  bool dashed = false;    // e.g. validation beside a solid training curve
};

// Lines over a shared x axis with a legend. Empty data draws the frame and "no data".
struct LineChart {
  ChartFrame frame;
  std::vector<Series> series;  // [S]
  bool y_from_zero = false;    // start the y axis at 0 (shares, rates)
};
std::string line_chart_svg(const LineChart& chart);

// One rectangle per cell coloured by value, row names on the left, column names below, a colour
// bar with the range, and the value written in cells large enough to hold it.
struct HeatMap {
  ChartFrame frame;
  std::vector<std::string> row_names;       // [R]
  std::vector<std::string> col_names;       // [C]
  std::vector<std::vector<double>> values;  // [R][C]
  double min_value = 0.0;                   // colour scale range; min == max: from the data
  double max_value = 0.0;
  std::string value_label;  // what the colour means, under the colour bar
};
std::string heat_map_svg(const HeatMap& map);

// Vertical bars, one per name, with an optional dashed reference line (e.g. the uniform share
// 1/E); bars flagged in `highlight` are drawn in a warning colour and named in the legend.
struct BarChart {
  ChartFrame frame;
  std::vector<std::string> names;  // [B]
  std::vector<double> values;      // [B]
  std::vector<bool> highlight;     // [B] or empty
  std::string highlight_label;     // legend entry for highlighted bars
  double reference = 0.0;          // drawn when reference_label is not empty
  std::string reference_label;
};
std::string bar_chart_svg(const BarChart& chart);

// Series stacked on top of each other over a shared x axis: how a whole (e.g. the expert load,
// summing to 1) is split over time.
struct StackedArea {
  ChartFrame frame;
  std::vector<double> x;                    // [N]
  std::vector<std::string> names;           // [S]
  std::vector<std::vector<double>> values;  // [S][N], non-negative
};
std::string stacked_area_svg(const StackedArea& chart);

// Grey-scale images in a row-wrapped grid, each drawn from an inline BMP data URI with its
// caption below. pixels[i] holds height * width values in [0, 1] (clamped), row-major, 0 black.
struct ImageGrid {
  std::string title;
  std::vector<std::string> captions;        // [E]
  int64_t height = 0;                       // H
  int64_t width = 0;                        // W
  std::vector<std::vector<double>> pixels;  // [E][H * W]
  int cell = 84;                            // drawn size of each image in CSS pixels
  int columns = 8;
};
std::string image_grid_svg(const ImageGrid& grid);

// An uncompressed 24-bit BMP of a grey-scale image as a data URI ("data:image/bmp;base64,...").
// pixels: [H * W] in [0, 1], row-major from the top.
std::string gray_bmp_data_uri(int64_t height, int64_t width, const std::vector<double>& pixels);

// Standard base64 with padding (RFC 4648 section 4).
std::string base64_encode(std::string_view bytes);

}  // namespace moe::report
