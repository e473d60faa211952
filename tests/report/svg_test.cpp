// The SVG chart library: well-formed output, escaping of every data string, empty and
// non-finite data, determinism, and the encoders (base64, BMP).
//
// Dims: N points, S series, R x C heat-map cells, E images of H x W pixels.
#include "moe/report/svg.h"

#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "report/xml_check.h"

namespace moe::report {
namespace {

using testing::count_of;
using testing::xml_problem;

const std::string kHostile = "<script>alert('x')</script> & \"quoted\" \x01";

TEST(Svg, EscapeXmlEscapesMarkupAndControlCharacters) {
  EXPECT_EQ(escape_xml("a<b>&\"c'"), "a&lt;b&gt;&amp;&quot;c&#39;");
  EXPECT_EQ(escape_xml("tab\tnew\nline"), "tab\tnew\nline");
  EXPECT_EQ(escape_xml(std::string("x\x01y", 3)), "x\xEF\xBF\xBDy");
  EXPECT_EQ(escape_xml("caf\xC3\xA9"), "caf\xC3\xA9");  // UTF-8 passes through
  EXPECT_EQ(xml_problem("<p>" + escape_xml(kHostile) + "</p>"), "");
}

TEST(Svg, FormatNumber) {
  EXPECT_EQ(format_number(0.0), "0");
  EXPECT_EQ(format_number(-0.0), "0");
  EXPECT_EQ(format_number(0.5), "0.5");
  EXPECT_EQ(format_number(0.123456), "0.1235");
  EXPECT_EQ(format_number(12345.4), "12345");
  EXPECT_EQ(format_number(-2.5e7), "-2.5e+07");
  EXPECT_EQ(format_number(NAN), "nan");
  EXPECT_EQ(format_number(-INFINITY), "-inf");
}

TEST(Svg, NiceTicksCoverTheRangeInNiceSteps) {
  const std::vector<double> t = nice_ticks(0.03, 0.91, 5);
  ASSERT_GE(t.size(), 3u);
  EXPECT_LE(t.front(), 0.03);
  EXPECT_GE(t.back(), 0.91);
  EXPECT_DOUBLE_EQ(t[1] - t[0], 0.2);
  const std::vector<double> flat = nice_ticks(2.0, 2.0, 5);
  ASSERT_GE(flat.size(), 2u);
  EXPECT_LT(flat.front(), 2.0);
  EXPECT_GT(flat.back(), 2.0);
  EXPECT_EQ(nice_ticks(NAN, 1.0, 5).size(), 2u);
}

TEST(Svg, Colours) {
  EXPECT_EQ(series_color(0), "#1f77b4");
  EXPECT_NE(series_color(10), series_color(11));
  EXPECT_EQ(series_color(25).size(), 7u);
  EXPECT_EQ(scale_color(0.0), "#ffffd9");
  EXPECT_EQ(scale_color(1.0), "#081d58");
  EXPECT_EQ(scale_color(2.0), scale_color(1.0));
  EXPECT_EQ(scale_color(NAN), "#ffffff");
}

TEST(Svg, LineChartDrawsEachSeriesAndBreaksAtMissingValues) {
  LineChart c{{"Loss", "epoch", "loss", 640, 300}, {}, false};
  c.series.push_back({"train", {1, 2, 3, 4}, {0.9, 0.7, 0.6, 0.5}, false});
  c.series.push_back({"validation", {1, 2, 3, 4}, {1.0, NAN, 0.8, 0.7}, true});
  const std::string svg = line_chart_svg(c);
  EXPECT_EQ(xml_problem(svg), "") << svg;
  EXPECT_EQ(svg.rfind("<svg xmlns=\"http://www.w3.org/2000/svg\"", 0), 0u);
  EXPECT_NE(svg.find("<title>Loss</title>"), std::string::npos);
  EXPECT_NE(svg.find(">epoch</text>"), std::string::npos);
  EXPECT_NE(svg.find(">validation</text>"), std::string::npos);
  EXPECT_EQ(count_of(svg, "stroke-width=\"2\""), 2u + 2u);  // 2 curves + 2 legend swatches
  EXPECT_EQ(count_of(svg, "<circle"), 7u);                  // the NaN point has no dot
  // The validation curve is two pieces: the gap at epoch 2 lifts the pen.
  const size_t dashed = svg.find("stroke-dasharray");
  const size_t path = svg.rfind("<path d=\"", dashed);
  EXPECT_EQ(count_of(svg.substr(path, dashed - path), "M"), 2u);
  EXPECT_EQ(line_chart_svg(c), svg);  // deterministic
}

TEST(Svg, EmptyChartsSayNoData) {
  for (const std::string& svg :
       {line_chart_svg({{"t", "x", "y", 640, 300}, {}, false}),
        line_chart_svg({{"t", "x", "y", 640, 300}, {{"s", {1.0}, {NAN}, false}}, false}),
        heat_map_svg({{"t", "x", "y", 640, 0}, {}, {}, {}, 0.0, 0.0, ""}),
        bar_chart_svg({{"t", "x", "y", 640, 300}, {}, {}, {}, "", 0.0, ""}),
        stacked_area_svg({{"t", "x", "y", 640, 300}, {}, {}, {}}),
        image_grid_svg({"t", {}, 2, 2, {}, 84, 8})}) {
    EXPECT_EQ(xml_problem(svg), "") << svg;
    EXPECT_NE(svg.find(">no data</text>"), std::string::npos) << svg;
  }
}

TEST(Svg, HostileStringsAreTextEverywhere) {
  const ChartFrame frame{kHostile, kHostile, kHostile, 640, 300};
  const std::vector<std::string> charts = {
      line_chart_svg({frame, {{kHostile, {1, 2}, {1, 2}, false}}, false}),
      heat_map_svg({frame, {kHostile, "b"}, {kHostile, "d"}, {{1, 2}, {3, 4}}, 0.0, 0.0, kHostile}),
      bar_chart_svg({frame, {kHostile, "b"}, {0.2, 0.8}, {true, false}, kHostile, 0.5, kHostile}),
      stacked_area_svg({frame, {1, 2}, {kHostile, "b"}, {{0.5, 0.4}, {0.5, 0.6}}}),
      image_grid_svg({kHostile, {kHostile}, 1, 2, {{0.0, 1.0}}, 84, 8}),
  };
  for (const std::string& svg : charts) {
    EXPECT_EQ(xml_problem(svg), "") << svg;
    EXPECT_EQ(svg.find("<script"), std::string::npos);
    EXPECT_NE(svg.find("&lt;script&gt;"), std::string::npos);
  }
}

TEST(Svg, HeatMapHasOneCellPerValueAndAColourBar) {
  HeatMap m{{"Co-activation", "expert", "expert", 640, 0},
            {"0", "1", "2"},
            {"0", "1", "2"},
            {{0.5, 0.1, 0.0}, {0.1, 0.3, 0.05}, {0.0, 0.05, 0.2}},
            0.0,
            0.0,
            "share of rows"};
  const std::string svg = heat_map_svg(m);
  EXPECT_EQ(xml_problem(svg), "") << svg;
  // 9 cells with a tooltip each; background, frame and 20 colour-bar steps are plain rects.
  EXPECT_EQ(count_of(svg, "</title></rect>"), 9u);
  EXPECT_EQ(count_of(svg, "<rect"), 9u + 1u + 1u + 20u);
  EXPECT_NE(svg.find("fill=\"#081d58\""), std::string::npos);  // the maximum, darkest
  EXPECT_NE(svg.find(">0.5</text>"), std::string::npos);       // written in its cell
  EXPECT_NE(svg.find(">share of rows</text>"), std::string::npos);
  // Ragged rows and NaN draw blank cells rather than failing.
  m.values = {{1.0, NAN}, {0.5}};
  EXPECT_EQ(xml_problem(heat_map_svg(m)), "");
}

TEST(Svg, BarChartHighlightsAndReference) {
  BarChart b{{"Load", "expert", "share", 640, 300},
             {"0", "1", "2", "3"},
             {0.5, 0.3, 0.19, 0.01},
             {false, false, false, true},
             "dead expert",
             0.25,
             "even share 1/E"};
  const std::string svg = bar_chart_svg(b);
  EXPECT_EQ(xml_problem(svg), "") << svg;
  EXPECT_EQ(count_of(svg, "</title></rect>"), 4u);
  EXPECT_EQ(count_of(svg, "fill=\"#d62728\""), 2u);  // the dead bar and its legend swatch
  EXPECT_NE(svg.find(">even share 1/E</text>"), std::string::npos);
  EXPECT_EQ(count_of(svg, "stroke-dasharray=\"6 4\""), 2u);  // line and legend
}

TEST(Svg, StackedAreaStacksToTheTotal) {
  StackedArea a{{"Load", "epoch", "share", 640, 300},
                {1, 2, 3},
                {"e0", "e1"},
                {{0.5, 0.6, 0.9}, {0.5, 0.4, 0.1}}};
  const std::string svg = stacked_area_svg(a);
  EXPECT_EQ(xml_problem(svg), "") << svg;
  EXPECT_EQ(count_of(svg, "Z\" fill="), 2u);
  // Both series reach the top of the axis (1.0) somewhere: the second band's top edge is
  // the total, drawn at the plot's top (y = 34 px).
  EXPECT_NE(svg.find(" 34.0L"), std::string::npos) << svg;
  a.x = {5};
  a.values = {{0.7}, {0.3}};
  EXPECT_EQ(xml_problem(stacked_area_svg(a)), "");
}

TEST(Svg, Base64MatchesRfc4648) {
  EXPECT_EQ(base64_encode(""), "");
  EXPECT_EQ(base64_encode("f"), "Zg==");
  EXPECT_EQ(base64_encode("fo"), "Zm8=");
  EXPECT_EQ(base64_encode("foo"), "Zm9v");
  EXPECT_EQ(base64_encode("foob"), "Zm9vYg==");
  EXPECT_EQ(base64_encode("foobar"), "Zm9vYmFy");
}

TEST(Svg, GrayBmpHeaderAndPadding) {
  // 3 x 2 pixels: rows of 9 bytes padded to 12, so 54 + 24 bytes in all.
  const std::string uri = gray_bmp_data_uri(2, 3, {0, 0.5, 1, 1, 1, 1});
  const std::string prefix = "data:image/bmp;base64,";
  ASSERT_EQ(uri.rfind(prefix, 0), 0u);
  EXPECT_EQ(uri.size() - prefix.size(), (54u + 24u + 2u) / 3u * 4u);
  EXPECT_EQ(uri.substr(prefix.size(), 4), base64_encode(std::string_view("BMN\0", 4)).substr(0, 4));
  const std::string svg = image_grid_svg({"Mean images",
                                          {"a", "b", "c"},
                                          2,
                                          3,
                                          {{0, 0.5, 1, 1, 1, 1}, {}, {1, 1, 1, 0, 0, 0}},
                                          84,
                                          2});
  EXPECT_EQ(xml_problem(svg), "") << svg;
  EXPECT_EQ(count_of(svg, "<image "), 3u);
  EXPECT_EQ(count_of(svg, "href=\"data:image/bmp;base64,"), 3u);
}

}  // namespace
}  // namespace moe::report
