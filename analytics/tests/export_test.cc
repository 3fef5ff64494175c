// run_export's JSON lines and CSV output, byte for byte: nulls vs empty, escaping, invalid
// UTF-8 (replaced and counted under utf8, exact under base64), headers.
#include "sh/analytics/export.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

using namespace std::string_literals;

#include "sh/kafka/record_batch.h"
#include "sh/metadata/metadata_store.h"

namespace sh::analytics {
namespace {

namespace fs = std::filesystem;

class export_test : public ::testing::Test {
 protected:
  void SetUp() override {
    store = std::shared_ptr<storage::object_store>(storage::open_memory_store());
    auto m = metadata::open_metadata_store("sqlite::memory:");
    ASSERT_TRUE(m) << m.message();
    meta = std::shared_ptr<metadata::metadata_store>(std::move(*m));
    ASSERT_TRUE(meta->create_topic("t", 1, {}));
    kafka::batch_build_options o;
    o.base_timestamp = 1700000000000;
    std::vector<kafka::record_spec> recs(3);
    recs[0].key = "k\"1";
    recs[0].value = "line\nbreak,comma";
    recs[0].headers = {{"h", std::string("v")}, {"n", std::nullopt}};
    recs[1].value = std::string("\xff\x00z", 3);  // null key, value not UTF-8
    recs[1].timestamp_delta = 1;
    recs[2].key = "";             // empty, not null
    recs[2].timestamp_delta = 2;  // null value
    auto b = kafka::build_batch(o, recs);
    ASSERT_TRUE(store->put("obj", b));
    metadata::range_commit rc;
    rc.topic = "t";
    rc.byte_length = b.size();
    rc.min_timestamp = o.base_timestamp;
    rc.max_timestamp = o.base_timestamp + 2;
    rc.batches.push_back({3, rc.max_timestamp, -1, -1, -1});
    ASSERT_TRUE(meta->commit_object({"obj", b.size(), {rc}}));
    dir = fs::temp_directory_path() / ("sh-export-test-" + std::to_string(::getpid()));
    fs::create_directories(dir);
  }
  void TearDown() override { fs::remove_all(dir); }

  std::string run(export_format f, binary_encoding enc, export_summary* sum = nullptr) {
    auto r = archive_reader::open(store, meta);
    export_options o;
    o.topic = "t";
    o.format = f;
    o.binary = enc;
    o.output = (dir / "out").string();
    auto s = run_export(*r, o);
    EXPECT_TRUE(s) << s.message();
    if (sum && s) *sum = *s;
    std::ifstream in(o.output, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }

  std::shared_ptr<storage::object_store> store;
  std::shared_ptr<metadata::metadata_store> meta;
  fs::path dir;
};

TEST_F(export_test, jsonl_utf8) {
  export_summary sum;
  EXPECT_EQ(run(export_format::jsonl, binary_encoding::utf8, &sum),
            "{\"topic\":\"t\",\"partition\":0,\"offset\":0,\"timestamp\":1700000000000,"
            "\"timestamp_type\":0,\"key\":\"k\\\"1\",\"value\":\"line\\nbreak,comma\","
            "\"headers\":[{\"key\":\"h\",\"value\":\"v\"},{\"key\":\"n\",\"value\":null}]}\n"
            "{\"topic\":\"t\",\"partition\":0,\"offset\":1,\"timestamp\":1700000000001,"
            "\"timestamp_type\":0,\"key\":null,\"value\":\"\xEF\xBF\xBD\\u0000z\","
            "\"headers\":[]}\n"
            "{\"topic\":\"t\",\"partition\":0,\"offset\":2,\"timestamp\":1700000000002,"
            "\"timestamp_type\":0,\"key\":\"\",\"value\":null,\"headers\":[]}\n");
  EXPECT_EQ(sum.records, 3u);
  EXPECT_EQ(sum.partitions, 1u);
  EXPECT_EQ(sum.invalid_utf8, 1u);
}

TEST_F(export_test, jsonl_base64) {
  const std::string out = run(export_format::jsonl, binary_encoding::base64);
  EXPECT_NE(out.find("\"key\":\"ayIx\",\"value\":\"bGluZQpicmVhayxjb21tYQ==\""), std::string::npos)
      << out;
  EXPECT_NE(out.find("\"key\":null,\"value\":\"/wB6\""), std::string::npos) << out;
  EXPECT_NE(out.find("{\"key\":\"h\",\"value\":\"dg==\"}"), std::string::npos) << out;
  EXPECT_NE(out.find("\"key\":\"\",\"value\":null"), std::string::npos) << out;
}

TEST_F(export_test, csv_quotes_and_nulls) {
  EXPECT_EQ(run(export_format::csv, binary_encoding::utf8),
            "topic,partition,offset,timestamp,timestamp_type,key,value,headers\n"
            "\"t\",0,0,1700000000000,0,\"k\"\"1\",\"line\nbreak,comma\","
            "\"[{\"\"key\"\":\"\"h\"\",\"\"value\"\":\"\"v\"\"},{\"\"key\"\":\"\"n\"\","
            "\"\"value\"\":null}]\"\n"
            "\"t\",0,1,1700000000001,0,,\"\xEF\xBF\xBD\0z\",\"[]\"\n"
            "\"t\",0,2,1700000000002,0,\"\",,\"[]\"\n"s);
}

TEST_F(export_test, bad_output_is_an_error) {
  auto r = archive_reader::open(store, meta);
  export_options o;
  o.topic = "t";
  o.output = "/nonexistent-dir/x.jsonl";
  auto s = run_export(*r, o);
  ASSERT_FALSE(s);
  EXPECT_EQ(s.code(), errc::io_error);
}

}  // namespace
}  // namespace sh::analytics
