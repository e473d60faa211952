#include <gtest/gtest.h>

#include <chrono>
#include <string>

#include "data_testing.h"
#include "moe/data/csv.h"

namespace moe {
namespace {

using testing::TempDir;

// The error message of a read that must fail.
std::string read_error(const std::string& path, const CsvOptions& options = {}) {
  Result<CsvTable> t = CsvTable::read(path, options);
  EXPECT_FALSE(t.is_ok()) << "expected " << path << " to be rejected";
  return t.is_ok() ? std::string() : t.status().message();
}

TEST(Csv, QuotedFieldsHoldDelimitersNewlinesAndQuotes) {
  TempDir dir;
  const std::string path = dir.write("q.csv",
                                     "id,text,score\n"
                                     "1,\"a, b\",3\n"
                                     "2,\"line one\nline two\",4\n"
                                     "3,\"she said \"\"hi\"\"\",5\n"
                                     "4,\"\",6\n"
                                     "5,plain \"inch\" mark,7\n");
  Result<CsvTable> t = CsvTable::read(path);
  ASSERT_TRUE(t.is_ok()) << t.status().message();
  ASSERT_EQ(t->n_rows(), 5);
  ASSERT_EQ(t->n_cols(), 3);
  EXPECT_EQ(t->cell(0, 1), "a, b");
  EXPECT_EQ(t->cell(1, 1), "line one\nline two");
  EXPECT_EQ(t->cell(2, 1), "she said \"hi\"");
  EXPECT_EQ(t->cell(3, 1), "");
  EXPECT_EQ(t->cell(4, 1), "plain \"inch\" mark");
  EXPECT_EQ(t->cell(4, 2), "7");
  // Lines are physical lines: the row after the two-line field starts on line 5.
  EXPECT_EQ(t->line(0), 2);
  EXPECT_EQ(t->line(1), 3);
  EXPECT_EQ(t->line(2), 5);
  EXPECT_EQ(t->line(4), 7);
}

TEST(Csv, CrlfBomQuotedHeaderAndBlankLines) {
  TempDir dir;
  const std::string path =
      dir.write("w.csv", "\xEF\xBB\xBF\"name\",\"value\"\r\nx,1\r\n\r\n\"y\r\nz\",2\r\nw,3");
  Result<CsvTable> t = CsvTable::read(path);
  ASSERT_TRUE(t.is_ok()) << t.status().message();
  EXPECT_EQ(t->header(), (std::vector<std::string>{"name", "value"}));
  ASSERT_EQ(t->n_rows(), 3);
  EXPECT_EQ(t->cell(0, 1), "1");  // no trailing \r
  EXPECT_EQ(t->cell(1, 0), "y\r\nz");
  EXPECT_EQ(t->cell(2, 0), "w");
  EXPECT_EQ(t->cell(2, 1), "3");
  EXPECT_EQ(t->line(1), 4);
  EXPECT_EQ(t->line(2), 6);
  EXPECT_EQ(t->find_column("value"), 1);
  EXPECT_EQ(t->find_column("nope"), -1);
}

TEST(Csv, DelimiterByExtensionOrGiven) {
  TempDir dir;
  const std::string tsv = dir.write("d.tsv", "a\tb\n1,5\t2\n");
  Result<CsvTable> t = CsvTable::read(tsv);
  ASSERT_TRUE(t.is_ok()) << t.status().message();
  EXPECT_EQ(t->delimiter(), '\t');
  EXPECT_EQ(t->cell(0, 0), "1,5");
  EXPECT_EQ(delimiter_for_path("x.TSV.gz"), '\t');
  EXPECT_EQ(delimiter_for_path("x.tab"), '\t');
  EXPECT_EQ(delimiter_for_path("x.txt"), ',');

  const std::string semi = dir.write("d.txt", "a;b\n1;2\n");
  CsvOptions semicolon;
  semicolon.delimiter = ';';
  Result<CsvTable> s = CsvTable::read(semi, semicolon);
  ASSERT_TRUE(s.is_ok()) << s.status().message();
  EXPECT_EQ(s->cell(0, 1), "2");
}

TEST(Csv, TsvReadsQuotesAsTextByDefault) {
  // A TSV of raw text, the first field starting with a quote: RFC 4180 refused it ("'(' after a
  // closing quote"); quoting none, the default for a tab, keeps every byte.
  TempDir dir;
  const std::string bytes =
      "text\tlabel\n"
      "\"Quoted\" (he said)\tgood\n"
      "\"open and never closed\tbad\n"
      "a \"\"doubled\"\"\t\"\"\n";
  const std::string path = dir.write("raw.tsv", bytes);
  Result<CsvTable> t = CsvTable::read(path);
  ASSERT_TRUE(t.is_ok()) << t.status().message();
  EXPECT_EQ(t->quoting(), CsvQuoting::kNone);
  ASSERT_EQ(t->n_rows(), 3);
  EXPECT_EQ(t->cell(0, 0), "\"Quoted\" (he said)");
  EXPECT_EQ(t->cell(1, 0), "\"open and never closed");
  EXPECT_EQ(t->cell(1, 1), "bad");
  EXPECT_EQ(t->cell(2, 0), "a \"\"doubled\"\"");
  EXPECT_EQ(t->cell(2, 1), "\"\"");
  EXPECT_EQ(t->line(2), 4);

  // Asked for, RFC 4180 reads the same file as before, and its message names the option.
  CsvOptions rfc4180;
  rfc4180.quoting = CsvQuoting::kRfc4180;
  EXPECT_EQ(read_error(path, rfc4180),
            path +
                " line 2: field 1: ' ' after a closing quote (a quote inside a quoted field is "
                "written \"\"); if quotes in this file are text, not quoting, set data.quoting = "
                "\"none\"");
  const std::string open = dir.write("open.tsv", "a\tb\n1\t\"2\n");
  EXPECT_EQ(read_error(open, rfc4180),
            open +
                " line 2: field 2 opens a quote that is never closed (the file ends inside it); "
                "if quotes in this file are text, not quoting, set data.quoting = \"none\"");

  // A comma keeps RFC 4180 by default; quoting none makes a CSV's quotes text too, so a comma
  // inside quotes splits the field.
  const std::string csv = dir.write("q.csv", "a,b\n\"x,y\",z\n");
  Result<CsvTable> c = CsvTable::read(csv);
  ASSERT_TRUE(c.is_ok()) << c.status().message();
  EXPECT_EQ(c->quoting(), CsvQuoting::kRfc4180);
  EXPECT_EQ(c->cell(0, 0), "x,y");
  CsvOptions none;
  none.quoting = CsvQuoting::kNone;
  EXPECT_NE(read_error(csv, none).find("q.csv line 2: 3 fields, header has 2"), std::string::npos);
  Result<CsvTable> p = CsvTable::parse("a,b\n\"x\",\"\n", "p.csv", ',', CsvQuoting::kNone);
  ASSERT_TRUE(p.is_ok()) << p.status().message();
  EXPECT_EQ(p->cell(0, 0), "\"x\"");
  EXPECT_EQ(p->cell(0, 1), "\"");

  // The names, and the default for each delimiter.
  EXPECT_EQ(default_quoting('\t'), CsvQuoting::kNone);
  EXPECT_EQ(default_quoting(','), CsvQuoting::kRfc4180);
  EXPECT_EQ(default_quoting(';'), CsvQuoting::kRfc4180);
  for (const CsvQuoting q : {CsvQuoting::kNone, CsvQuoting::kRfc4180}) {
    CsvQuoting back = q == CsvQuoting::kNone ? CsvQuoting::kRfc4180 : CsvQuoting::kNone;
    EXPECT_TRUE(parse_csv_quoting(csv_quoting_name(q), &back));
    EXPECT_EQ(back, q);
  }
  CsvQuoting unused;
  EXPECT_FALSE(parse_csv_quoting("auto", &unused));
}

TEST(Csv, GzippedFileIsDecompressed) {
  TempDir dir;
  const std::string path = dir.write_gzip("z.tsv.gz", "text\tlabel\n\"good, tasty\"\tgreat\n");
  CsvOptions rfc4180;
  rfc4180.quoting = CsvQuoting::kRfc4180;
  Result<CsvTable> t = CsvTable::read(path, rfc4180);
  ASSERT_TRUE(t.is_ok()) << t.status().message();
  EXPECT_EQ(t->cell(0, 0), "good, tasty");
  EXPECT_EQ(t->cell(0, 1), "great");
}

TEST(Csv, ConcatenatedGzipMembersAreOneFile) {
  TempDir dir;
  auto slurp = [](const std::string& path) {
    std::string bytes;
    std::FILE* f = std::fopen(path.c_str(), "rb");
    char buf[4096];
    size_t n;
    while (f != nullptr && (n = std::fread(buf, 1, sizeof buf, f)) > 0) bytes.append(buf, n);
    if (f != nullptr) std::fclose(f);
    return bytes;
  };
  const std::string a = slurp(dir.write_gzip("a.gz", "x,y\n1,2\n"));
  const std::string b = slurp(dir.write_gzip("b.gz", std::string(100000, '3') + ",4\n"));
  Result<CsvTable> t = CsvTable::read(dir.write("both.csv.gz", a + b));
  ASSERT_TRUE(t.is_ok()) << t.status().message();
  ASSERT_EQ(t->n_rows(), 2);
  EXPECT_EQ(t->cell(1, 0).size(), 100000u);
  EXPECT_EQ(t->cell(1, 1), "4");
}

TEST(Csv, Utf8IsKeptAndInvalidUtf8IsRefusedNamingLineFieldAndColumn) {
  // Invalid UTF-8 used to be kept as bytes: training ran, then the checkpoint's JSON dump threw
  // ("invalid UTF-8 byte at index 0: 0xFF") naming no file, leaving a staging directory behind.
  TempDir dir;
  Result<CsvTable> t = CsvTable::read(dir.write("u.csv", "a,b\ncaf\xc3\xa9,\xf0\x9f\x99\x82\n"));
  ASSERT_TRUE(t.is_ok()) << t.status().message();
  EXPECT_EQ(t->cell(0, 0), "caf\xc3\xa9");
  EXPECT_EQ(t->cell(0, 1), "\xf0\x9f\x99\x82");
  const std::string cell = read_error(dir.write("cell.csv", "x,label\n1,good\n2,\"ba\xff\"\n"));
  EXPECT_EQ(cell.substr(cell.find("cell.csv")),
            "cell.csv line 3, field 2 (column 'label'): not valid UTF-8 (byte 0xff at byte 3 of "
            "the field); moe reads text as UTF-8: convert the file first (for example with iconv "
            "-f latin1 -t utf-8)");
  const std::string header = read_error(dir.write("header.tsv", "x\tna\xefme\n1\t2\n"));
  EXPECT_NE(header.find("header.tsv line 1, field 2 (the header): not valid UTF-8 (byte 0xef at "
                        "byte 3 of the field)"),
            std::string::npos)
      << header;
  // Overlong forms, surrogates, values above U+10FFFF and cut sequences are not UTF-8 either.
  for (const char* bad :
       {"\xc0\xaf", "\xe0\x80\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xe2\x82"}) {
    const std::string msg = read_error(dir.write("bad.csv", std::string("a\nok\n") + bad + "\n"));
    EXPECT_NE(msg.find("bad.csv line 3, field 1 (column 'a'): not valid UTF-8 (byte 0x"),
              std::string::npos)
        << msg;
  }
}

TEST(Csv, RaggedRowNamesFileLineAndCounts) {
  TempDir dir;
  const std::string path = dir.write("data.csv", "a,b,c\n1,2,3\n\"x\ny\",2,3\n4,5\n");
  const std::string msg = read_error(path);
  EXPECT_NE(msg.find("data.csv line 5: 2 fields, header has 3"), std::string::npos) << msg;

  const std::string extra = dir.write("extra.csv", "a,b\n1,2,3\n");
  EXPECT_NE(read_error(extra).find("extra.csv line 2: 3 fields, header has 2"), std::string::npos);
}

TEST(Csv, EachMalformedFileHasItsOwnMessage) {
  TempDir dir;
  struct Case {
    const char* name;
    const char* bytes;
    const char* expected;
  };
  const Case cases[] = {
      {"unterminated.csv", "a,b\n1,2\n3,\"never closed\n4,5\n",
       "unterminated.csv line 3: field 2 opens a quote that is never closed"},
      {"after_quote.csv", "a,b\n\"x\"y,2\n",
       "after_quote.csv line 2: field 1: 'y' after a closing quote (a quote inside a quoted "
       "field is written \"\"); if quotes in this file are text, not quoting, set "
       "data.quoting = \"none\""},
      {"empty.csv", "", "empty.csv: empty file"},
      {"bom_only.csv", "\xEF\xBB\xBF\n\n", "bom_only.csv: empty file"},
      {"header_only.csv", "a,b\r\n", "header_only.csv: a header and no data rows"},
      {"dup.csv", "a,b,a\n1,2,3\n", "dup.csv line 1: columns 1 and 3 are both named 'a'"},
  };
  for (const Case& c : cases) {
    const std::string msg = read_error(dir.write(c.name, c.bytes));
    EXPECT_NE(msg.find(c.expected), std::string::npos) << c.name << ": " << msg;
  }
  EXPECT_NE(read_error(dir.path("absent.csv")).find("absent.csv: cannot open"), std::string::npos);
  EXPECT_NE(read_error(dir.path("")).find("is a directory"), std::string::npos);
  // A device is not a data file: /dev/zero used to be read until "cannot allocate 0 bytes".
  EXPECT_EQ(read_error("/dev/zero"),
            "/dev/zero: is a character device, not a file (give a regular file or a pipe)");
}

TEST(Csv, FileAboveTheLimitIsRejectedBeforeReading) {
  TempDir dir;
  const std::string path = dir.write("big.csv", "a,b\n" + std::string(5000, '1') + ",2\n");
  CsvOptions small;
  small.max_file_bytes = 1024;
  const std::string msg = read_error(path, small);
  EXPECT_NE(msg.find("big.csv: 4.9 KiB is more than the 1.0 KiB limit"), std::string::npos) << msg;
  // A gzipped file is held to the limit after decompression.
  const std::string gz = dir.write_gzip("big.csv.gz", "a,b\n" + std::string(5000, '1') + ",2\n");
  EXPECT_NE(read_error(gz, small).find("decompresses to more than the 1.0 KiB limit"),
            std::string::npos);
}

TEST(Csv, HundredThousandRowsParseQuickly) {
  std::string bytes = "id,x,y,city,text,label\n";
  for (int i = 0; i < 100000; ++i)
    bytes += std::to_string(i) + "," + std::to_string(i % 97) + ".5,-" + std::to_string(i % 13) +
             ",city" + std::to_string(i % 7) + ",\"some text, with a comma\"," +
             (i % 3 ? "yes" : "no") + "\n";
  const auto start = std::chrono::steady_clock::now();
  Result<CsvTable> t = CsvTable::parse(bytes, "big.csv", ',', CsvQuoting::kRfc4180);
  const double ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  ASSERT_TRUE(t.is_ok()) << t.status().message();
  EXPECT_EQ(t->n_rows(), 100000);
  EXPECT_EQ(t->cell(99999, 4), "some text, with a comma");
  EXPECT_EQ(t->line(99999), 100001);
  std::printf("parsed %zu bytes, 100000 rows in %.1f ms\n", bytes.size(), ms);
}

}  // namespace
}  // namespace moe
