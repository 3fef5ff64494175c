// The group APIs end to end without sockets: requests encoded with the generated codecs, run
// through the real handlers and coordinator on an io_context, against a real SQLite metadata
// store; plus coordinator leases between two broker processes sharing one store.
#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <chrono>
#include <filesystem>

#include "broker_context.h"
#include "groups/group_coordinator.h"
#include "groups/group_request_util.h"
#include "sh/kafka/messages/consumer_protocol_subscription.h"
#include "sh/kafka/messages/delete_groups_request.h"
#include "sh/kafka/messages/delete_groups_response.h"
#include "sh/kafka/messages/describe_groups_request.h"
#include "sh/kafka/messages/describe_groups_response.h"
#include "sh/kafka/messages/find_coordinator_request.h"
#include "sh/kafka/messages/find_coordinator_response.h"
#include "sh/kafka/messages/heartbeat_request.h"
#include "sh/kafka/messages/heartbeat_response.h"
#include "sh/kafka/messages/join_group_request.h"
#include "sh/kafka/messages/join_group_response.h"
#include "sh/kafka/messages/leave_group_request.h"
#include "sh/kafka/messages/leave_group_response.h"
#include "sh/kafka/messages/list_groups_request.h"
#include "sh/kafka/messages/list_groups_response.h"
#include "sh/kafka/messages/offset_commit_request.h"
#include "sh/kafka/messages/offset_commit_response.h"
#include "sh/kafka/messages/offset_delete_request.h"
#include "sh/kafka/messages/offset_delete_response.h"
#include "sh/kafka/messages/offset_fetch_request.h"
#include "sh/kafka/messages/offset_fetch_response.h"
#include "sh/kafka/messages/sync_group_request.h"
#include "sh/kafka/messages/sync_group_response.h"
#include "test_context.h"

namespace sh::broker {
namespace {

namespace fs = std::filesystem;
using kafka::error_code;

int16_t code(error_code e) { return static_cast<int16_t>(e); }

std::unique_ptr<broker_context> make_context(const fs::path& db, int32_t node_id,
                                             const std::string& instance,
                                             int32_t min_session_timeout_ms = 6000) {
  broker_config cfg;
  cfg.node_id = node_id;
  cfg.listeners = {listener{"PLAINTEXT", "127.0.0.1", static_cast<uint16_t>(9000 + node_id)}};
  cfg.advertised_listeners = cfg.listeners;
  cfg.num_blocking_threads = 2;
  auto ctx = testing::make_embedded_context(db.parent_path(), cfg);  // db is <dir>/meta.db
  if (!ctx) return nullptr;
  ctx->instance_id = instance;
  coordinator_options opts;
  opts.group.initial_rebalance_delay_ms = 0;
  opts.group.min_session_timeout_ms = min_session_timeout_ms;
  ctx->groups = std::make_unique<group_coordinator>(*ctx, opts);
  ctx->groups->start();
  return ctx;
}

std::vector<uint8_t> subscription(std::vector<std::string> topics) {
  kafka::consumer_protocol_subscription sub;
  sub.topics = std::move(topics);
  kafka::byte_writer w;
  w.write_int16(0);
  sub.encode(w, 0);
  return w.take();
}

class group_handlers_test : public ::testing::Test {
 protected:
  void SetUp() override {
    dir = testing::fresh_test_dir("sh-groups");
    ctx = make_context(dir / "meta.db", 1, "broker-one");
    ASSERT_TRUE(ctx->meta->create_topic("t", 4, {}));
    ASSERT_TRUE(ctx->meta->create_topic("u", 1, {}));
  }
  void TearDown() override {
    ctx->groups->stop();
    ctx.reset();
    fs::remove_all(dir);
  }

  using result_ptr = std::shared_ptr<std::optional<handler_response>>;

  // Starts a handler; finish() runs the io_context until it answers.
  template <class M>
  result_ptr begin(handler_fn fn, int16_t api_key, int16_t version, const M& body) {
    auto req = std::make_shared<request>();
    req->api_key = api_key;
    req->api_version = version;
    req->client_id = "tester";
    req->frame = encode_body(body, version);
    auto out = std::make_shared<std::optional<handler_response>>();
    asio::co_spawn(io, run(*ctx, conn, fn, req, out), asio::detached);
    return out;
  }

  static awaitable<void> run(broker_context& c, connection_state& conn, handler_fn f,
                             std::shared_ptr<request> r, result_ptr o) {
    *o = co_await f(c, conn, *r);
  }

  template <class R>
  R finish(const result_ptr& out, int16_t version) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (!out->has_value() && std::chrono::steady_clock::now() < deadline) {
      io.run_for(std::chrono::milliseconds(2));
    }
    R resp;
    EXPECT_TRUE(out->has_value()) << "handler did not answer";
    if (!out->has_value()) return resp;
    EXPECT_TRUE((*out)->send);
    kafka::byte_reader r((*out)->body);
    EXPECT_TRUE(resp.decode(r, version));
    EXPECT_EQ(r.remaining(), 0u);
    return resp;
  }

  template <class R, class M>
  R call(handler_fn fn, int16_t api_key, int16_t version, const M& body) {
    return finish<R>(begin(fn, api_key, version, body), version);
  }

  kafka::join_group_request join_request(const std::string& member_id,
                                         std::vector<std::string> topics = {"t"}) {
    kafka::join_group_request j;
    j.group_id = "g";
    j.session_timeout_ms = 10000;
    j.rebalance_timeout_ms = 10000;
    j.member_id = member_id;
    j.protocol_type = "consumer";
    j.protocols.push_back({"range", subscription(std::move(topics)), {}});
    return j;
  }

  kafka::offset_commit_request commit_request(const std::string& member, int32_t generation,
                                              int64_t offset) {
    kafka::offset_commit_request c;
    c.group_id = "g";
    c.member_id = member;
    c.generation_id_or_member_epoch = generation;
    kafka::offset_commit_request::offset_commit_request_topic t;
    t.name = "t";
    for (int32_t p = 0; p < 2; ++p) {
      kafka::offset_commit_request::offset_commit_request_partition part;
      part.partition_index = p;
      part.committed_offset = offset + p;
      part.committed_metadata = "md" + std::to_string(p);
      t.partitions.push_back(part);
    }
    c.topics.push_back(t);
    return c;
  }

  fs::path dir;
  std::unique_ptr<broker_context> ctx;
  connection_state conn = [] {
    connection_state c;
    c.peer = "127.0.0.1:5555";
    return c;
  }();
  asio::io_context io;
  asio::executor_work_guard<asio::io_context::executor_type> guard{io.get_executor()};
};

TEST_F(group_handlers_test, find_coordinator_all_versions) {
  for (int16_t v = 0; v <= 4; ++v) {
    kafka::find_coordinator_request in;
    in.key = "g";
    in.coordinator_keys = {"g", "h"};
    auto resp = call<kafka::find_coordinator_response>(&handle_find_coordinator, 10, v, in);
    if (v < 4) {
      EXPECT_EQ(resp.error_code, 0) << "v" << v;
      EXPECT_EQ(resp.node_id, 1);
      EXPECT_EQ(resp.host, "127.0.0.1");
      EXPECT_EQ(resp.port, 9001);
    } else {
      ASSERT_EQ(resp.coordinators.size(), 2u);
      EXPECT_EQ(resp.coordinators[1].key, "h");
      EXPECT_EQ(resp.coordinators[1].node_id, 1);
      EXPECT_EQ(resp.coordinators[1].error_code, 0);
    }
  }
  kafka::find_coordinator_request bad;
  bad.key = "";
  auto resp = call<kafka::find_coordinator_response>(&handle_find_coordinator, 10, 2, bad);
  EXPECT_EQ(resp.error_code, code(error_code::invalid_request));
  kafka::find_coordinator_request txn;
  txn.key = "tx";
  txn.key_type = 1;
  resp = call<kafka::find_coordinator_response>(&handle_find_coordinator, 10, 2, txn);
  EXPECT_EQ(resp.error_code, 0);
  EXPECT_EQ(resp.node_id, 1);
}

TEST_F(group_handlers_test, two_members_join_sync_commit_fetch_leave) {
  // Member a: JoinGroup v5 needs two steps.
  auto first = call<kafka::join_group_response>(&handle_join_group, 11, 5, join_request(""));
  ASSERT_EQ(first.error_code, code(error_code::member_id_required));
  ASSERT_FALSE(first.member_id.empty());
  EXPECT_EQ(first.member_id.rfind("tester-", 0), 0u);
  const std::string a = first.member_id;
  auto ja = call<kafka::join_group_response>(&handle_join_group, 11, 5, join_request(a));
  ASSERT_EQ(ja.error_code, 0);
  EXPECT_EQ(ja.generation_id, 1);
  EXPECT_EQ(ja.leader, a);
  EXPECT_EQ(ja.protocol_name, "range");
  ASSERT_EQ(ja.members.size(), 1u);

  kafka::sync_group_request sa;
  sa.group_id = "g";
  sa.generation_id = 1;
  sa.member_id = a;
  sa.assignments.push_back({a, {1, 2, 3}, {}});
  auto sra = call<kafka::sync_group_response>(&handle_sync_group, 14, 3, sa);
  EXPECT_EQ(sra.error_code, 0);
  EXPECT_EQ(sra.assignment, (std::vector<uint8_t>{1, 2, 3}));

  // Member b joins with JoinGroup v2 (no MEMBER_ID_REQUIRED): waits until a rejoins.
  auto pending_b = begin(&handle_join_group, 11, 2, join_request(""));
  kafka::heartbeat_request hb;
  hb.group_id = "g";
  hb.generation_id = 1;
  hb.member_id = a;
  auto hr = call<kafka::heartbeat_response>(&handle_heartbeat, 12, 3, hb);
  EXPECT_EQ(hr.error_code, code(error_code::rebalance_in_progress));
  auto ja2 = call<kafka::join_group_response>(&handle_join_group, 11, 5, join_request(a));
  auto jb = finish<kafka::join_group_response>(pending_b, 2);
  ASSERT_EQ(ja2.error_code, 0);
  ASSERT_EQ(jb.error_code, 0);
  EXPECT_EQ(ja2.generation_id, 2);
  EXPECT_EQ(jb.generation_id, 2);
  EXPECT_EQ(ja2.members.size(), 2u);
  EXPECT_TRUE(jb.members.empty());
  const std::string b = jb.member_id;

  // The follower's SyncGroup (v1) waits for the leader's (v5, with protocol checks).
  kafka::sync_group_request sb;
  sb.group_id = "g";
  sb.generation_id = 2;
  sb.member_id = b;
  auto pending_sb = begin(&handle_sync_group, 14, 1, sb);
  kafka::sync_group_request sa2;
  sa2.group_id = "g";
  sa2.generation_id = 2;
  sa2.member_id = a;
  sa2.protocol_type = "consumer";
  sa2.protocol_name = "range";
  sa2.assignments.push_back({a, {0xa}, {}});
  sa2.assignments.push_back({b, {0xb}, {}});
  auto sra2 = call<kafka::sync_group_response>(&handle_sync_group, 14, 5, sa2);
  auto srb = finish<kafka::sync_group_response>(pending_sb, 1);
  EXPECT_EQ(sra2.error_code, 0);
  EXPECT_EQ(sra2.protocol_name, "range");
  EXPECT_EQ(sra2.assignment, std::vector<uint8_t>{0xa});
  EXPECT_EQ(srb.error_code, 0);
  EXPECT_EQ(srb.assignment, std::vector<uint8_t>{0xb});

  // Commits: a simple commit is refused while the group has members; a member's is stored.
  auto cr =
      call<kafka::offset_commit_response>(&handle_offset_commit, 8, 2, commit_request("", -1, 5));
  EXPECT_EQ(cr.topics[0].partitions[0].error_code, code(error_code::unknown_member_id));
  cr = call<kafka::offset_commit_response>(&handle_offset_commit, 8, 7, commit_request(a, 1, 5));
  EXPECT_EQ(cr.topics[0].partitions[0].error_code, code(error_code::illegal_generation));
  cr = call<kafka::offset_commit_response>(&handle_offset_commit, 8, 8, commit_request(b, 2, 5));
  EXPECT_EQ(cr.topics[0].partitions[0].error_code, 0);
  EXPECT_EQ(cr.topics[0].partitions[1].error_code, 0);
  auto unknown_topic = commit_request(b, 2, 1);
  unknown_topic.topics[0].name = "nope";
  cr = call<kafka::offset_commit_response>(&handle_offset_commit, 8, 5, unknown_topic);
  EXPECT_EQ(cr.topics[0].partitions[0].error_code, code(error_code::unknown_topic_or_partition));

  // OffsetFetch v1 (explicit partitions), v4 (null topics = all), v8 (several groups).
  kafka::offset_fetch_request f;
  f.group_id = "g";
  f.topics.emplace();
  f.topics->push_back({"t", {0, 1, 3}, {}});
  auto fr = call<kafka::offset_fetch_response>(&handle_offset_fetch, 9, 1, f);
  ASSERT_EQ(fr.topics.size(), 1u);
  ASSERT_EQ(fr.topics[0].partitions.size(), 3u);
  EXPECT_EQ(fr.topics[0].partitions[0].committed_offset, 5);
  EXPECT_EQ(fr.topics[0].partitions[1].committed_offset, 6);
  EXPECT_EQ(fr.topics[0].partitions[1].metadata, "md1");
  EXPECT_EQ(fr.topics[0].partitions[2].committed_offset, -1);
  f.topics.reset();
  fr = call<kafka::offset_fetch_response>(&handle_offset_fetch, 9, 4, f);
  EXPECT_EQ(fr.error_code, 0);
  ASSERT_EQ(fr.topics.size(), 1u);
  EXPECT_EQ(fr.topics[0].partitions.size(), 2u);
  kafka::offset_fetch_request f8;
  f8.groups.push_back({"g", std::nullopt, -1, std::nullopt, {}});
  f8.groups.push_back({"other", std::nullopt, -1, std::nullopt, {}});
  auto fr8 = call<kafka::offset_fetch_response>(&handle_offset_fetch, 9, 8, f8);
  ASSERT_EQ(fr8.groups.size(), 2u);
  EXPECT_EQ(fr8.groups[0].topics.at(0).partitions.size(), 2u);
  EXPECT_TRUE(fr8.groups[1].topics.empty());

  // DescribeGroups v2 and ListGroups v4 with a state filter.
  kafka::describe_groups_request d;
  d.groups = {"g", "missing"};
  auto dr = call<kafka::describe_groups_response>(&handle_describe_groups, 15, 2, d);
  ASSERT_EQ(dr.groups.size(), 2u);
  EXPECT_EQ(dr.groups[0].group_state, "Stable");
  EXPECT_EQ(dr.groups[0].protocol_type, "consumer");
  EXPECT_EQ(dr.groups[0].protocol_data, "range");
  ASSERT_EQ(dr.groups[0].members.size(), 2u);
  EXPECT_EQ(dr.groups[0].members[1].member_assignment, std::vector<uint8_t>{0xb});
  EXPECT_EQ(dr.groups[0].members[0].client_host, "/127.0.0.1");
  EXPECT_EQ(dr.groups[1].group_state, "Dead");
  kafka::list_groups_request l;
  l.states_filter = {"stable"};
  auto lr = call<kafka::list_groups_response>(&handle_list_groups, 16, 4, l);
  ASSERT_EQ(lr.groups.size(), 1u);
  EXPECT_EQ(lr.groups[0].group_id, "g");
  EXPECT_EQ(lr.groups[0].group_state, "Stable");

  // Deleting a group with members, and offsets of a subscribed topic, is refused.
  kafka::delete_groups_request del;
  del.groups_names = {"g"};
  auto delr = call<kafka::delete_groups_response>(&handle_delete_groups, 42, 1, del);
  EXPECT_EQ(delr.results[0].error_code, code(error_code::non_empty_group));
  kafka::offset_delete_request od;
  od.group_id = "g";
  for (const char* name : {"t", "u"}) {
    kafka::offset_delete_request::offset_delete_request_topic t;
    t.name = name;
    t.partitions.emplace_back().partition_index = 0;
    od.topics.push_back(std::move(t));
  }
  auto odr = call<kafka::offset_delete_response>(&handle_offset_delete, 47, 0, od);
  EXPECT_EQ(odr.error_code, 0);
  EXPECT_EQ(odr.topics[0].partitions[0].error_code, code(error_code::group_subscribed_to_topic));
  EXPECT_EQ(odr.topics[1].partitions[0].error_code, 0);

  // LeaveGroup v1 (one member) and v3 (batch): the group ends Empty.
  kafka::leave_group_request lv;
  lv.group_id = "g";
  lv.member_id = b;
  auto lvr = call<kafka::leave_group_response>(&handle_leave_group, 13, 1, lv);
  EXPECT_EQ(lvr.error_code, 0);
  kafka::leave_group_request lv3;
  lv3.group_id = "g";
  lv3.members.push_back({a, std::nullopt, std::nullopt, {}});
  lv3.members.push_back({"ghost", std::nullopt, std::nullopt, {}});
  auto lvr3 = call<kafka::leave_group_response>(&handle_leave_group, 13, 3, lv3);
  ASSERT_EQ(lvr3.members.size(), 2u);
  EXPECT_EQ(lvr3.members[0].error_code, 0);
  EXPECT_EQ(lvr3.members[1].error_code, code(error_code::unknown_member_id));
  dr = call<kafka::describe_groups_response>(&handle_describe_groups, 15, 5, d);
  EXPECT_EQ(dr.groups[0].group_state, "Empty");

  // Now the offsets may go: OffsetDelete, then DeleteGroups.
  odr = call<kafka::offset_delete_response>(&handle_offset_delete, 47, 0, od);
  EXPECT_EQ(odr.topics[0].partitions[0].error_code, 0);
  fr = call<kafka::offset_fetch_response>(&handle_offset_fetch, 9, 4, f);
  ASSERT_EQ(fr.topics.size(), 1u);
  ASSERT_EQ(fr.topics[0].partitions.size(), 1u);  // partition 0 is gone, 1 remains
  EXPECT_EQ(fr.topics[0].partitions[0].partition_index, 1);
  delr = call<kafka::delete_groups_response>(&handle_delete_groups, 42, 2, del);
  EXPECT_EQ(delr.results[0].error_code, 0);
  delr = call<kafka::delete_groups_response>(&handle_delete_groups, 42, 2, del);
  EXPECT_EQ(delr.results[0].error_code, code(error_code::group_id_not_found));
  fr = call<kafka::offset_fetch_response>(&handle_offset_fetch, 9, 4, f);
  EXPECT_TRUE(fr.topics.empty());
}

TEST_F(group_handlers_test, simple_consumer_commits_and_join_v0) {
  // OffsetCommit v0 and v1 without membership, into a group no one has joined.
  auto c0 = commit_request("", -1, 40);
  auto cr = call<kafka::offset_commit_response>(&handle_offset_commit, 8, 0, c0);
  EXPECT_EQ(cr.topics[0].partitions[0].error_code, 0);
  c0.topics[0].partitions[0].committed_metadata = std::string(5000, 'x');
  cr = call<kafka::offset_commit_response>(&handle_offset_commit, 8, 1, c0);
  EXPECT_EQ(cr.topics[0].partitions[0].error_code, code(error_code::offset_metadata_too_large));
  EXPECT_EQ(cr.topics[0].partitions[1].error_code, 0);
  kafka::offset_fetch_request f;
  f.group_id = "g";
  f.topics.emplace();
  f.topics->push_back({"t", {0}, {}});
  auto fr = call<kafka::offset_fetch_response>(&handle_offset_fetch, 9, 0, f);
  EXPECT_EQ(fr.topics.at(0).partitions.at(0).committed_offset, 40);

  // JoinGroup v0 (no rebalance timeout) in one step.
  auto j = join_request("");
  auto jr = call<kafka::join_group_response>(&handle_join_group, 11, 0, j);
  EXPECT_EQ(jr.error_code, 0);
  EXPECT_EQ(jr.generation_id, 1);
  j.session_timeout_ms = 1;
  jr = call<kafka::join_group_response>(&handle_join_group, 11, 7, j);
  EXPECT_EQ(jr.error_code, code(error_code::invalid_session_timeout));
  EXPECT_FALSE(jr.protocol_name.has_value());
  kafka::join_group_request no_group = join_request("");
  no_group.group_id = "";
  jr = call<kafka::join_group_response>(&handle_join_group, 11, 9, no_group);
  EXPECT_EQ(jr.error_code, code(error_code::invalid_group_id));
}

TEST_F(group_handlers_test, ticker_expires_a_silent_member_and_completes_the_rebalance) {
  ctx->groups->stop();
  ctx = make_context(dir / "meta.db", 1, "broker-one-again", 50);
  auto j = join_request("");
  j.session_timeout_ms = 300;
  j.rebalance_timeout_ms = 60000;
  auto ja = call<kafka::join_group_response>(&handle_join_group, 11, 2, j);
  ASSERT_EQ(ja.error_code, 0);
  kafka::sync_group_request sa;
  sa.group_id = "g";
  sa.generation_id = ja.generation_id;
  sa.member_id = ja.member_id;
  ASSERT_EQ(call<kafka::sync_group_response>(&handle_sync_group, 14, 2, sa).error_code, 0);
  // b joins; a never heartbeats nor rejoins: the ticker expires it after 300 ms, well before
  // the 60 s rebalance timeout, and b's join completes alone.
  const auto started = std::chrono::steady_clock::now();
  auto jb = call<kafka::join_group_response>(&handle_join_group, 11, 2, j);
  EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(5));
  ASSERT_EQ(jb.error_code, 0);
  EXPECT_EQ(jb.generation_id, 2);
  EXPECT_EQ(jb.leader, jb.member_id);
  ASSERT_EQ(jb.members.size(), 1u);
}

TEST_F(group_handlers_test, lease_decides_the_coordinator_and_fences_the_old_one) {
  auto other = make_context(dir / "meta.db", 2, "broker-two");
  auto mine = ctx->groups->lookup_blocking("g");
  ASSERT_TRUE(mine.fence);
  EXPECT_EQ(mine.node_id, 1);
  EXPECT_EQ(mine.fence->epoch, 1);
  // The other broker can't see broker one as live (single-broker context): not available.
  auto theirs = other->groups->lookup_blocking("g");
  EXPECT_FALSE(theirs.fence);
  EXPECT_EQ(theirs.error, error_code::coordinator_not_available);
  EXPECT_FALSE(other->groups->held_fence("g"));
  EXPECT_EQ(other->groups->heartbeat("g", "m", std::nullopt, 1), error_code::not_coordinator);

  // Broker one stops and releases; broker two takes over with a new epoch.
  ctx->groups->stop();
  theirs = other->groups->lookup_blocking("g");
  ASSERT_TRUE(theirs.fence);
  EXPECT_EQ(theirs.node_id, 2);
  EXPECT_EQ(theirs.fence->epoch, 2);
  // A write under broker one's old lease is refused.
  metadata::group_offset o;
  o.topic = "t";
  o.partition = 0;
  o.offset = 1;
  auto stale = ctx->meta->commit_group_offsets("g", {o}, mine.fence);
  ASSERT_FALSE(stale);
  EXPECT_EQ(stale.code(), metadata::errc::fenced);
  EXPECT_TRUE(other->meta->commit_group_offsets("g", {o}, theirs.fence));
  other->groups->stop();
}

}  // namespace
}  // namespace sh::broker
