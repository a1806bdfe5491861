/* Unit tests of build sessions' pure half: which directories are markers,
 * which paths a session covers, the statement's name, and the statement
 * over a session's subjects; and of the relay claims a provenance
 * statement carries, marked unverified. */
#include <criterion/criterion.h>
#include <errno.h>
#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>

#include "audit.h"
#include "provenance.h"
#include "session.h"

Test(session, a_marker_is_dot_session_dash_an_id_below_any_directory)
{
	char dir[PATH_MAX], id[SESSION_ID_MAX + 1];

	cr_assert(session_marker("rel/.session-1234", dir, id));
	cr_assert_str_eq(dir, "rel");
	cr_assert_str_eq(id, "1234");
	cr_assert(session_marker(".session-build_7.2-rc1", dir, id));
	cr_assert_str_eq(dir, "");
	cr_assert_str_eq(id, "build_7.2-rc1");
	cr_assert(session_marker("a/b/c/.session-x", dir, id));
	cr_assert_str_eq(dir, "a/b/c");
}

Test(session, other_names_and_unsafe_ids_are_no_markers)
{
	char dir[PATH_MAX], id[SESSION_ID_MAX + 1], longid[100];

	cr_assert_not(session_marker("rel/session-1", dir, id));
	cr_assert_not(session_marker("rel/.session-", dir, id));
	cr_assert_not(session_marker("rel/.session-..", dir, id));
	cr_assert_not(session_marker("rel/.session-a b", dir, id));
	cr_assert_not(session_marker("rel/.session-a$b", dir, id));
	cr_assert_not(session_marker(".session-x/file", dir, id));
	memset(longid, 'a', sizeof(longid));
	snprintf(longid, sizeof(longid), ".session-%0*d", SESSION_ID_MAX + 1, 0);
	cr_assert_not(session_marker(longid, dir, id));
}

Test(session, covers_what_is_below_its_directory_only)
{
	cr_assert(session_covers("rel", "rel/a.bin"));
	cr_assert(session_covers("rel", "rel/sub/a.bin"));
	cr_assert_not(session_covers("rel", "release/a.bin"));
	cr_assert_not(session_covers("rel", "rel"));
	cr_assert_not(session_covers("rel/sub", "rel/a.bin"));
	cr_assert(session_covers("", "anything/at/all"));
}

Test(session, the_statement_is_named_after_the_marker_without_its_dot)
{
	char out[PATH_MAX];

	cr_assert_eq(session_statement_name("rel/sub", "42", out), 0);
	cr_assert_str_eq(out, "rel/sub/session-42");
	cr_assert_eq(session_statement_name("", "42", out), 0);
	cr_assert_str_eq(out, "session-42");
}

static struct json_object *get(struct json_object *o, const char *path)
{
	char key[64];

	while (o && *path) {
		size_t n = strcspn(path, ".");
		snprintf(key, sizeof(key), "%.*s", (int)n, path);
		if (!json_object_object_get_ex(o, key, &o))
			return NULL;
		path += n + (path[n] == '.');
	}
	return o;
}

Test(session, the_statement_lists_every_subject_and_its_leaf)
{
	char a[] = "rel/a.bin", b[] = "rel/sub/b.bin";
	struct session_subject subjects[2] = {{.path = a, .leaf = 7}, {.path = b, .leaf = 9}};
	struct session_facts f = {.id = "42",
				  .dir = "rel",
				  .marker = "rel/.session-42",
				  .uid = 1000,
				  .user = "builder",
				  .rule = "release",
				  .key = "codesign",
				  .policy_version = 3,
				  .builder_id = "https://host/signfs",
				  .origin = "host/signfs",
				  .opened_ms = 1764720000123LL,
				  .closed_ms = 1764720060456LL};
	struct json_object *st, *list, *by;
	char *text = NULL;

	memset(subjects[0].sha256, 0xab, SHA256_LEN);
	memset(subjects[1].sha256, 0x01, SHA256_LEN);
	cr_assert_eq(session_statement(&f, subjects, 2, &text), 0);
	st = json_tokener_parse(text);
	cr_assert_not_null(st);
	cr_assert_str_eq(json_object_get_string(get(st, "_type")), INTOTO_STATEMENT_V1);
	cr_assert_str_eq(json_object_get_string(get(st, "predicateType")), SLSA_PROVENANCE_V1);
	list = get(st, "subject");
	cr_assert_eq(json_object_array_length(list), 2);
	cr_assert_str_eq(json_object_get_string(get(json_object_array_get_idx(list, 1), "name")),
			 "rel/sub/b.bin");
	cr_assert_str_eq(
	    json_object_get_string(get(json_object_array_get_idx(list, 0), "digest.sha256")),
	    "abababababababababababababababababababababababababababababababab");
	cr_assert_str_eq(json_object_get_string(get(st, "predicate.buildDefinition.buildType")),
			 SESSION_BUILD_TYPE);
	cr_assert_str_eq(json_object_get_string(
			     get(st, "predicate.buildDefinition.externalParameters.opener.user")),
			 "builder");
	cr_assert_str_eq(json_object_get_string(get(st, "predicate.runDetails.metadata.startedOn")),
			 "2025-12-03T00:00:00.123Z");
	cr_assert_str_eq(
	    json_object_get_string(get(st, "predicate.runDetails.metadata.invocationId")),
	    "https://host/signfs/sessions/rel/.session-42");
	by = get(st, "predicate.runDetails.byproducts");
	cr_assert_eq(json_object_array_length(by), 2);
	cr_assert_eq(
	    json_object_get_int64(get(json_object_array_get_idx(by, 1), "annotations.leafIndex")),
	    9);
	cr_assert_str_eq(json_object_get_string(get(json_object_array_get_idx(by, 1), "uri")),
			 "https://host/signfs/audit/9");
	json_object_put(st);
	free(text);
}

Test(session, a_session_without_subjects_has_no_statement)
{
	struct session_facts f = {.id = "1", .dir = "", .marker = ".session-1"};
	char *text = NULL;

	cr_assert_eq(session_statement(&f, NULL, 0, &text), -EINVAL);
	cr_assert_null(text);
}

Test(provenance, relay_claims_are_marked_unverified_and_only_strings_and_numbers_kept)
{
	struct json_object *c = audit_claims(
	    "{\"host\":\"build-7\",\"uid\":1000,\"exe\":\"/usr/bin/cp\",\"unverified\":false,"
	    "\"nested\":{\"a\":1},\"list\":[1,2],\"flag\":true}");

	cr_assert_not_null(c);
	cr_assert(json_object_get_boolean(get(c, "unverified")));
	cr_assert_str_eq(json_object_get_string(get(c, "host")), "build-7");
	cr_assert_eq(json_object_get_int64(get(c, "uid")), 1000);
	cr_assert_str_eq(json_object_get_string(get(c, "exe")), "/usr/bin/cp");
	cr_assert_null(get(c, "nested"));
	cr_assert_null(get(c, "list"));
	cr_assert_null(get(c, "flag"));
	json_object_put(c);
}

Test(provenance, claims_that_are_no_object_are_left_out)
{
	cr_assert_null(audit_claims(NULL));
	cr_assert_null(audit_claims("[1,2]"));
	cr_assert_null(audit_claims("not json"));
}
