/* 6001-tmpl.c - unit tests for the dashboard template renderer (src/tmpl.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "tap.h"
#include "tmpl.h"
#include "util.h"

static char scratch[] = "/tmp/t6001-XXXXXX";
static char tdir[UTIL_PATH_MAX];
static struct tmpl_set *set;
static char errbuf[TMPL_ERR_MAX];
static char result[8192];

/* Write DIR/NAME.html (or any relative path under the scratch dir). */
static void
put(const char *dir, const char *file, const char *text)
{
	char path[UTIL_PATH_MAX];

	if (util_fmt(path, sizeof(path), "%s/%s", dir, file) == -1 ||
	    util_write_file_atomic(path, text, strlen(text), 0644) == -1) {
		printf("Bail out! cannot write %s\n", file);
		exit(1);
	}
}

static struct json_object *
parse(const char *json)
{
	struct json_object *o;

	if (json == NULL)
		return NULL;
	o = json_tokener_parse(json);
	if (o == NULL) {
		printf("Bail out! bad test JSON: %s\n", json);
		exit(1);
	}
	return o;
}

/* Render text with data json; the output, or "ERR: message". */
static const char *
rs(const char *text, const char *json)
{
	struct json_object *ctx = parse(json);
	struct tmpl_buf b;

	tmpl_buf_init(&b);
	errbuf[0] = '\0';
	if (tmpl_render_string(set, text, ctx, &b, errbuf,
	    sizeof(errbuf)) == -1)
		util_fmt(result, sizeof(result), "ERR: %s", errbuf);
	else
		util_strlcpy(result, b.data, sizeof(result));
	tmpl_buf_free(&b);
	json_object_put(ctx);
	return result;
}

/* Render named template; the output, or "ERR: message". */
static const char *
rn(const char *name, const char *json)
{
	struct json_object *ctx = parse(json);
	struct tmpl_buf b;

	tmpl_buf_init(&b);
	errbuf[0] = '\0';
	if (tmpl_render(set, name, ctx, &b, errbuf, sizeof(errbuf)) == -1)
		util_fmt(result, sizeof(result), "ERR: %s", errbuf);
	else
		util_strlcpy(result, b.data, sizeof(result));
	tmpl_buf_free(&b);
	json_object_put(ctx);
	return result;
}

/* ok when s is an error whose message contains want. */
static void
is_err(const char *s, const char *want, const char *name)
{
	int ok = strncmp(s, "ERR: ", 5) == 0 && strstr(s, want) != NULL;

	tap_ok(ok, "%s", name);
	if (!ok)
		tap_diag("got '%s', want an error containing '%s'", s, want);
}

static void
test_buf(void)
{
	struct tmpl_buf b;

	tmpl_buf_init(&b);
	tap_ok(b.data == NULL && b.len == 0, "buf: init is empty");
	tap_is_int(tmpl_buf_append(&b, "abc", 3), 0, "buf: append");
	tap_is_int(tmpl_buf_append(&b, "def", 2), 0, "buf: append part");
	tap_is_str(b.data, "abcde", "buf: contents NUL-terminated");
	tap_is_int((long long)b.len, 5, "buf: length");
	tap_is_int(tmpl_buf_append(&b, "x", TMPL_OUT_MAX), -1,
	    "buf: append past TMPL_OUT_MAX refused");
	tap_is_str(b.data, "abcde", "buf: unchanged after refused append");
	tmpl_buf_free(&b);
	tap_ok(b.data == NULL && b.len == 0 && b.cap == 0, "buf: free resets");
	tmpl_buf_free(&b);
	tap_ok(b.data == NULL && b.len == 0 && b.cap == 0,
	    "buf: freeing it again leaves it empty");
}

static void
test_names(void)
{
	static const char *const good[] = { "page", "a", "dash-board_2",
	    "0" };
	static const char *const bad[] = { "", "../x", "a/b", "/etc/passwd",
	    "..", ".", "x.html", "Page", "a b", "a\nb", "a\\b", "%2e%2e",
	    "a\x80" };
	char longname[TMPL_NAME_MAX + 2];
	size_t i;

	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		tap_ok(tmpl_name_valid(good[i]), "name '%s' valid", good[i]);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		tap_ok(!tmpl_name_valid(bad[i]), "name #%zu invalid", i);
	tap_ok(!tmpl_name_valid(NULL), "NULL name invalid");
	memset(longname, 'a', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	tap_ok(!tmpl_name_valid(longname), "over-long name invalid");
	longname[TMPL_NAME_MAX] = '\0';
	tap_ok(tmpl_name_valid(longname), "TMPL_NAME_MAX-long name valid");

	/* A real file one level up must stay out of reach. */
	is_err(rn("../secret", NULL), "bad template name",
	    "render '../secret' refused");
	is_err(rn("a/b", NULL), "bad template name", "render 'a/b' refused");
	is_err(rn("", NULL), "bad template name", "render '' refused");
	is_err(rn(NULL, NULL), "bad template name", "render NULL refused");
	is_err(rs("{{> ../secret}}", NULL), "bad partial name '../secret'",
	    "partial '../secret' refused");
	is_err(rs("{{> a/b}}", NULL), "bad partial name", "partial 'a/b' "
	    "refused");
	is_err(rs("{{>}}", NULL), "bad partial name", "empty partial refused");
}

static void
test_escape(void)
{
	tap_is_str(rs("<p>{{x}}</p>", "{\"x\":\"<script>alert(1)</script>\"}"),
	    "<p>&lt;script&gt;alert(1)&lt;/script&gt;</p>", "escape script tag");
	tap_is_str(rs("<a title=\"{{x}}\">", "{\"x\":\"\\\" onmouseover=\\\""
	    "alert(1)\"}"),
	    "<a title=\"&quot; onmouseover&#61;&quot;alert(1)\">",
	    "escape double-quoted attribute injection");
	tap_is_str(rs("<a title='{{x}}'>", "{\"x\":\"' onclick='x\"}"),
	    "<a title='&#39; onclick&#61;&#39;x'>",
	    "escape single-quoted attribute injection");
	tap_is_str(rs("<a title={{x}}>", "{\"x\":\"`a` b=c\"}"),
	    "<a title=&#96;a&#96; b&#61;c>",
	    "escape backtick and equals for unquoted attributes");
	tap_is_str(rs("{{x}}", "{\"x\":\"&<>\\\"'`=\"}"),
	    "&amp;&lt;&gt;&quot;&#39;&#96;&#61;", "escape every special byte");
	tap_is_str(rs("{{x}}", "{\"x\":\"&amp;\"}"), "&amp;amp;",
	    "escape is not idempotent: entities in data are data");
	tap_is_str(rs("{{x}}", "{\"x\":\"caf\\u00e9 \\u2603\"}"),
	    "caf\xc3\xa9 \xe2\x98\x83", "UTF-8 passes through");
	tap_is_str(rs("[{{x}}]", "{\"x\":\"a\\u0000b\"}"), "[a&#65533;b]",
	    "NUL in data becomes U+FFFD");
	tap_is_str(rs("{{x}}", "{\"x\":\"{{y}}\",\"y\":\"boom\"}"), "{{y}}",
	    "mustache in data is not expanded");
	tap_is_str(rs("{{{x}}}", "{\"x\":\"<b>hi</b>\"}"), "<b>hi</b>",
	    "triple mustache is raw");
	tap_is_str(rs("{{& x}}", "{\"x\":\"<b>hi</b>\"}"), "<b>hi</b>",
	    "ampersand tag is raw");
	tap_is_str(rs("{{ x }}|{{{ x }}}", "{\"x\":\"<\"}"), "&lt;|<",
	    "whitespace inside tags allowed");
	tap_is_str(rs("{{#l}}{{.}}{{/l}}", "{\"l\":[\"<\",\">\"]}"),
	    "&lt;&gt;", "{{.}} is escaped");
	tap_is_str(rs("{{a.b}}", "{\"a\":{\"b\":\"<i>\"}}"), "&lt;i&gt;",
	    "dotted value is escaped");
	tap_is_str(rs("<p class=\"x\">&amp;</p>", NULL),
	    "<p class=\"x\">&amp;</p>", "template text is copied verbatim");
}

static void
test_values(void)
{
	tap_is_str(rs("{{n}}", "{\"n\":42}"), "42", "int");
	tap_is_str(rs("{{n}}", "{\"n\":-7}"), "-7", "negative int");
	tap_is_str(rs("{{n}}", "{\"n\":9223372036854775807}"),
	    "9223372036854775807", "int64 max");
	tap_is_str(rs("{{n}}", "{\"n\":-9223372036854775808}"),
	    "-9223372036854775808", "int64 min");
	tap_is_str(rs("{{n}}", "{\"n\":18446744073709551615}"),
	    "18446744073709551615", "uint64 max");
	tap_is_str(rs("{{n}}", "{\"n\":1.5}"), "1.5", "double");
	tap_is_str(rs("{{n}}", "{\"n\":0.1}"), "0.1", "double 0.1 short");
	tap_is_str(rs("{{n}}", "{\"n\":3.0}"), "3", "integral double");
	tap_is_str(rs("{{n}}", "{\"n\":1e20}"), "1e+20", "big double");
	tap_is_str(rs("{{t}} {{f}}", "{\"t\":true,\"f\":false}"),
	    "true false", "booleans");
	tap_is_str(rs("[{{z}}]", "{\"z\":null}"), "[]", "null is empty");
	tap_is_str(rs("[{{nope}}]", "{}"), "[]", "missing is empty");
	tap_is_str(rs("[{{o}}{{a}}]", "{\"o\":{\"k\":1},\"a\":[1]}"), "[]",
	    "object and array variables print nothing");
	tap_is_str(rs("[{{x}}]", NULL), "[]", "NULL context");
	tap_is_str(rs("[{{x}}]", "[1,2]"), "[]", "array root context");
	tap_is_str(rs("", "{}"), "", "empty template");
}

static void
test_sections(void)
{
	tap_is_str(rs("{{#l}}<li>{{n}}</li>{{/l}}",
	    "{\"l\":[{\"n\":1},{\"n\":2},{\"n\":3}]}"),
	    "<li>1</li><li>2</li><li>3</li>", "array of objects iterates");
	tap_is_str(rs("{{#l}}{{.}},{{/l}}", "{\"l\":[\"a\",1,true,null]}"),
	    "a,1,true,,", "array of scalars with {{.}}");
	tap_is_str(rs("[{{#l}}x{{/l}}]", "{\"l\":[]}"), "[]",
	    "empty array skips");
	tap_is_str(rs("{{#o}}{{a}}-{{b}}{{/o}}", "{\"o\":{\"a\":1,\"b\":2}}"),
	    "1-2", "object pushes once");
	tap_is_str(rs("[{{#o}}x{{/o}}]", "{\"o\":{}}"), "[x]",
	    "empty object is true");
	tap_is_str(rs("[{{#b}}x{{/b}}]", "{\"b\":true}"), "[x]",
	    "true renders once");
	tap_is_str(rs("[{{#b}}x{{/b}}]", "{\"b\":false}"), "[]",
	    "false skips");
	tap_is_str(rs("[{{#b}}x{{/b}}]", "{\"b\":null}"), "[]", "null skips");
	tap_is_str(rs("[{{#b}}x{{/b}}]", "{}"), "[]", "missing skips");
	tap_is_str(rs("[{{#b}}x{{/b}}]", "{\"b\":0}"), "[]", "0 skips");
	tap_is_str(rs("[{{#b}}x{{/b}}]", "{\"b\":0.0}"), "[]", "0.0 skips");
	tap_is_str(rs("[{{#b}}x{{/b}}]", "{\"b\":\"\"}"), "[]", "\"\" skips");
	tap_is_str(rs("[{{#b}}{{.}}{{/b}}]", "{\"b\":\"hi\"}"), "[hi]",
	    "non-empty string renders once as {{.}}");
	tap_is_str(rs("[{{#b}}{{.}}{{/b}}]", "{\"b\":-2}"), "[-2]",
	    "non-zero number renders once");
	tap_is_str(rs("{{#a}}{{#b}}{{x}}{{/b}}{{/a}}",
	    "{\"a\":[{\"b\":[{\"x\":1},{\"x\":2}]},{\"b\":[{\"x\":3}]}]}"),
	    "123", "nested arrays");
	tap_is_str(rs("{{#l}}{{#.}}{{.}}{{/.}};{{/l}}",
	    "{\"l\":[[1,2],[],[3]]}"), "12;;3;", "section over {{.}}");
}

static void
test_inverted(void)
{
	static const char *const falsy[] = { "{}", "{\"v\":null}",
	    "{\"v\":false}", "{\"v\":[]}", "{\"v\":0}", "{\"v\":\"\"}" };
	static const char *const truthy[] = { "{\"v\":true}", "{\"v\":[0]}",
	    "{\"v\":1}", "{\"v\":\"x\"}", "{\"v\":{}}" };
	size_t i;

	for (i = 0; i < sizeof(falsy) / sizeof(falsy[0]); i++)
		tap_is_str(rs("[{{^v}}none{{/v}}]", falsy[i]), "[none]",
		    falsy[i]);
	for (i = 0; i < sizeof(truthy) / sizeof(truthy[0]); i++)
		tap_is_str(rs("[{{^v}}none{{/v}}]", truthy[i]), "[]",
		    truthy[i]);
	tap_is_str(rs("{{#l}}<li>{{.}}</li>{{/l}}{{^l}}<p>empty</p>{{/l}}",
	    "{\"l\":[]}"), "<p>empty</p>", "list-or-empty idiom");
	tap_is_str(rs("{{^v}}{{x}}{{/v}}", "{\"x\":\"ctx\"}"), "ctx",
	    "inverted keeps the context");
}

static void
test_dotted_and_stack(void)
{
	tap_is_str(rs("{{a.b.c}}", "{\"a\":{\"b\":{\"c\":\"deep\"}}}"),
	    "deep", "dotted a.b.c");
	tap_is_str(rs("[{{a.x.c}}]", "{\"a\":{\"b\":{\"c\":1}}}"), "[]",
	    "dotted missing middle");
	tap_is_str(rs("[{{a.b.c}}]", "{\"a\":{\"b\":5}}"), "[]",
	    "dotted through a scalar");
	tap_is_str(rs("{{#a.b}}{{c}}{{/a.b}}", "{\"a\":{\"b\":{\"c\":7}}}"),
	    "7", "dotted section");
	tap_is_str(rs("{{#o}}{{top.x}}{{/o}}",
	    "{\"top\":{\"x\":\"up\"},\"o\":{}}"), "up",
	    "dotted first part found in an outer frame");
	tap_is_str(rs("[{{#a}}{{b.c}}{{/a}}]",
	    "{\"a\":{\"b\":{}},\"b\":{\"c\":\"outer\"}}"), "[]",
	    "broken dotted chain does not fall back to outer frames");
	tap_is_str(rs("{{#items}}{{name}}:{{x}} {{/items}}",
	    "{\"name\":\"outer\",\"items\":[{\"x\":1},"
	    "{\"x\":2,\"name\":\"inner\"}]}"), "outer:1 inner:2 ",
	    "lookup walks up the stack, inner frame shadows");
	tap_is_str(rs("{{#a}}{{#b}}{{#c}}{{x}}{{y}}{{z}}{{/c}}{{/b}}{{/a}}",
	    "{\"x\":1,\"a\":{\"y\":2,\"b\":{\"c\":{\"z\":3}}}}"), "123",
	    "three-level stack lookup");
	tap_is_str(rs("{{#a}}[{{.}}]{{/a}}", "{\"a\":{\"k\":1}}"), "[]",
	    "{{.}} on an object prints nothing");
	tap_is_str(rs("{{#l}}{{#flag}}*{{/flag}}{{n}}{{/l}}",
	    "{\"flag\":true,\"l\":[{\"n\":1},{\"n\":2,\"flag\":false}]}"),
	    "*12", "null/false in inner frame shadows outer true");
}

static void
test_comments(void)
{
	tap_is_str(rs("a{{! hidden }}b", NULL), "ab", "comment");
	tap_is_str(rs("a{{!\nmulti\nline {{ \n}}b", NULL), "ab",
	    "multi-line comment");
	is_err(rs("a\n{{!x}}\n{{#s}}", NULL), "at line 3",
	    "line counting continues after a comment");
}

static void
test_partials(void)
{
	put(tdir, "header.html", "<h1>{{title}}</h1>");
	put(tdir, "row.html", "<tr><td>{{name}}</td><td>{{owner}}</td></tr>");
	put(tdir, "table.html", "<table>{{#rows}}{{> row}}{{/rows}}</table>");
	put(tdir, "uses-missing.html", "x{{> nope}}");
	put(tdir, "broken.html", "line1\n{{#open}}\n");
	put(tdir, "uses-broken.html", "{{> broken}}");
	put(tdir, "node.html",
	    "<li>{{name}}{{#kids}}<ul>{{> node}}</ul>{{/kids}}</li>");
	put(tdir, "self.html", "x{{> self}}");

	tap_is_str(rs("{{> header}}body", "{\"title\":\"<T>\"}"),
	    "<h1>&lt;T&gt;</h1>body", "partial renders with context");
	tap_is_str(rn("table", "{\"owner\":\"me\",\"rows\":[{\"name\":\"a\"},"
	    "{\"name\":\"b\",\"owner\":\"you\"}]}"),
	    "<table><tr><td>a</td><td>me</td></tr>"
	    "<tr><td>b</td><td>you</td></tr></table>",
	    "partial in a loop sees the whole context stack");
	/* Leaves need "kids":[]: a missing key would be looked up in the
	 * parent frame, as mustache does, and recurse until the limit. */
	tap_is_str(rn("node", "{\"name\":\"root\",\"kids\":[{\"name\":\"a\","
	    "\"kids\":[{\"name\":\"a1\",\"kids\":[]}]},"
	    "{\"name\":\"b\",\"kids\":[]}]}"),
	    "<li>root<ul><li>a<ul><li>a1</li></ul></li></ul>"
	    "<ul><li>b</li></ul></li>", "recursive partial over a tree");
	is_err(rs("{{> nope}}", NULL), "unknown partial 'nope'",
	    "unknown partial");
	is_err(rn("uses-missing", NULL), "unknown partial 'nope', included "
	    "at line 1 in template 'uses-missing'",
	    "unknown partial names the including template");
	is_err(rn("uses-broken", NULL), "unclosed section 'open' at line 2 "
	    "in template 'broken'", "compile error inside a partial");
	is_err(rn("self", NULL), "nesting deeper than", "self-including "
	    "partial hits the depth limit");
	is_err(rn("missing", NULL), "unknown template 'missing'",
	    "unknown template");

	{
		struct tmpl_buf b;
		int rc;

		tmpl_buf_init(&b);
		rc = tmpl_render_string(NULL, "a{{> header}}", NULL, &b, errbuf,
		    sizeof(errbuf));
		tap_ok(rc == -1 && strstr(errbuf, "unknown partial 'header'"),
		    "partial without a template set is an error");
		rc = tmpl_render_string(NULL, "plain {{x}}", NULL, &b, errbuf,
		    sizeof(errbuf));
		tap_ok(rc == 0 && strcmp(b.data, "plain ") == 0,
		    "render_string without a set works");
		tmpl_buf_free(&b);
	}
}

static void
test_cache(void)
{
	put(tdir, "cached.html", "v1 {{x}}");
	tap_is_str(rn("cached", "{\"x\":1}"), "v1 1", "first load");
	put(tdir, "cached.html", "v2 {{x}}");
	tap_is_str(rn("cached", "{\"x\":2}"), "v1 2",
	    "second render comes from the cache");
}

static void
test_layout(void)
{
	struct json_object *ctx;
	struct json_object *dummy;
	struct tmpl_buf b;
	int rc;

	put(tdir, "layout.html", "<html><title>{{title}}</title>"
	    "<body>{{{content}}}</body></html>");
	put(tdir, "page-home.html", "<p>{{msg}}</p>");
	put(tdir, "page-bad.html", "{{#x}}");

	ctx = parse("{\"title\":\"Home & <away>\",\"msg\":\"<b>hi</b>\"}");
	tmpl_buf_init(&b);
	tap_is_int(tmpl_buf_append(&b, "HDR:", 4), 0, "layout: prefix");
	rc = tmpl_render_page(set, "layout", "page-home", ctx, &b, errbuf,
	    sizeof(errbuf));
	tap_is_int(rc, 0, "layout: render ok");
	tap_is_str(b.data, "HDR:<html><title>Home &amp; &lt;away&gt;</title>"
	    "<body><p>&lt;b&gt;hi&lt;/b&gt;</p></body></html>",
	    "layout: page inside, escaped once, appended to out");
	tap_ok(!json_object_object_get_ex(ctx, TMPL_CONTENT_KEY, &dummy),
	    "layout: caller context not modified");

	rc = tmpl_render_page(set, "layout", "page-bad", ctx, &b, errbuf,
	    sizeof(errbuf));
	tap_ok(rc == -1 && strstr(errbuf, "unclosed section 'x'"),
	    "layout: page error reported");
	rc = tmpl_render_page(set, "nolayout", "page-home", ctx, &b, errbuf,
	    sizeof(errbuf));
	tap_ok(rc == -1 && strstr(errbuf, "unknown template 'nolayout'"),
	    "layout: missing layout reported");
	rc = tmpl_render_page(set, "layout", "../page-home", ctx, &b, errbuf,
	    sizeof(errbuf));
	tap_ok(rc == -1 && strstr(errbuf, "bad template name"),
	    "layout: bad page name refused");
	tap_is_str(b.data, "HDR:<html><title>Home &amp; &lt;away&gt;</title>"
	    "<body><p>&lt;b&gt;hi&lt;/b&gt;</p></body></html>",
	    "layout: failed renders leave out as it was");
	tmpl_buf_free(&b);
	json_object_put(ctx);

	ctx = parse("{\"content\":\"<evil>\"}");
	tmpl_buf_init(&b);
	rc = tmpl_render_page(set, "layout", "page-home", ctx, &b, errbuf,
	    sizeof(errbuf));
	tap_ok(rc == 0 && strstr(b.data, "<evil>") == NULL,
	    "layout: page content shadows a ctx key of the same name");
	tmpl_buf_free(&b);
	json_object_put(ctx);
}

static void
test_malformed(void)
{
	struct tmpl_buf b;
	int rc;

	is_err(rs("{{#x}}abc", NULL), "unclosed section 'x' at line 1",
	    "unclosed section");
	is_err(rs("a\nb\n{{#x}}\nc\n", NULL), "unclosed section 'x' at line 3",
	    "unclosed section line number");
	is_err(rs("{{#a}}{{#b}}{{/b}}", NULL), "unclosed section 'a'",
	    "outer section unclosed");
	is_err(rs("{{#a}}{{/b}}", NULL), "mismatched close 'b' at line 1, "
	    "expected 'a'", "mismatched close");
	is_err(rs("{{#a}}{{#b}}{{/a}}{{/b}}", NULL), "mismatched close 'a'",
	    "crossed sections");
	is_err(rs("x{{/a}}", NULL), "unexpected close 'a'", "close without "
	    "open");
	is_err(rs("{{^a}}", NULL), "unclosed section 'a'",
	    "unclosed inverted");
	is_err(rs("abc {{x", NULL), "unclosed tag at line 1", "unclosed tag");
	is_err(rs("{{{x}}", NULL), "unclosed tag", "unclosed triple");
	is_err(rs("{{", NULL), "unclosed tag", "bare open");
	is_err(rs("{{}}", NULL), "bad tag name ''", "empty tag");
	is_err(rs("{{#}}{{/}}", NULL), "bad tag name", "empty section");
	is_err(rs("{{a..b}}", NULL), "bad tag name 'a..b'", "double dot");
	is_err(rs("{{.a}}", NULL), "bad tag name", "leading dot");
	is_err(rs("{{a.}}", NULL), "bad tag name", "trailing dot");
	is_err(rs("{{a b}}", NULL), "bad tag name", "space in name");
	is_err(rs("{{<script>}}", NULL), "bad tag name '<script>'",
	    "markup in a tag");
	is_err(rs("{{x\x01\x7f}}", NULL), "bad tag name 'x?" "?'",
	    "control bytes scrubbed in messages");
	is_err(rs("{{=<% %>=}}", NULL), "set-delimiter tags are not supported",
	    "set delimiters refused");
	is_err(rs("{{# a }}{{/ a }}{{#b}}", NULL), "unclosed section 'b'",
	    "spaced section names match");
	tap_is_str(rs("}} {x} }}}", NULL), "}} {x} }}}", "stray closers are "
	    "text");
	tap_is_str(rs("{{x}}}", "{\"x\":1}"), "1}", "extra brace is text");

	/* A failed render leaves what the caller had already written. */
	tmpl_buf_init(&b);
	tap_is_int(tmpl_buf_append(&b, "keep", 4), 0, "prefix written");
	rc = tmpl_render_string(set, "partial output {{#x}}", NULL, &b,
	    errbuf, sizeof(errbuf));
	tap_ok(rc == -1 && strcmp(b.data, "keep") == 0 && b.len == 4,
	    "compile error leaves out untouched");
	rc = tmpl_render_string(set, "partial output {{> nope}}", NULL, &b,
	    errbuf, sizeof(errbuf));
	tap_ok(rc == -1 && strcmp(b.data, "keep") == 0 && b.len == 4,
	    "render error rolls out back");
	rc = tmpl_render_string(set, "{{x}}", NULL, &b, NULL, 0);
	tap_ok(rc == 0 && strcmp(b.data, "keep") == 0,
	    "NULL error buffer accepted");
	rc = tmpl_render_string(set, "{{#x}}", NULL, &b, NULL, 0);
	tap_is_int(rc, -1, "error with NULL error buffer");
	rc = tmpl_render_string(set, NULL, NULL, &b, errbuf, sizeof(errbuf));
	tap_is_int(rc, -1, "NULL template text refused");
	tmpl_buf_free(&b);
}

/* Every prefix of a template and seeded random byte soup: must not crash
 * (ASan/UBSan watch) and must answer 0 or -1. */
static void
test_garbage(void)
{
	static const char full[] = "<ul>{{#l}}<li a='{{x}}'>{{{raw}}}"
	    "{{& r}}{{^e}}no{{/e}}{{! c }}{{a.b.c}}{{> header}}{{.}}</li>"
	    "{{/l}}</ul>";
	static const char alphabet[] = "{{}}#^/!>&.=ab \n{";
	struct json_object *ctx;
	struct tmpl_buf b;
	char text[sizeof(full)];
	unsigned seed = 12345;
	int i, j, bad = 0, ok = 0;

	ctx = parse("{\"l\":[{\"x\":\"<\",\"a\":{\"b\":{\"c\":1}}},2,null],"
	    "\"raw\":\"<i>\",\"title\":\"t\"}");
	for (i = 0; i <= (int)sizeof(full) - 1; i++) {
		memcpy(text, full, (size_t)i);
		text[i] = '\0';
		tmpl_buf_init(&b);
		switch (tmpl_render_string(set, text, ctx, &b, errbuf,
		    sizeof(errbuf))) {
		case 0:
			ok++;
			break;
		case -1:
			break;
		default:
			bad++;
		}
		tmpl_buf_free(&b);
	}
	tap_ok(bad == 0 && ok > 0, "every prefix renders or fails cleanly "
	    "(%d ok)", ok);
	for (i = 0; i < 2000; i++) {
		int n;

		seed = seed * 1103515245u + 12345u;
		n = (int)((seed >> 16) % (sizeof(text) - 1));
		for (j = 0; j < n; j++) {
			seed = seed * 1103515245u + 12345u;
			text[j] = alphabet[(seed >> 16) %
			    (sizeof(alphabet) - 1)];
		}
		text[n] = '\0';
		tmpl_buf_init(&b);
		if (tmpl_render_string(set, text, ctx, &b, errbuf,
		    sizeof(errbuf)) == 0 && b.data == NULL)
			bad++;
		tmpl_buf_free(&b);
	}
	tap_ok(bad == 0, "random templates render or fail cleanly");
	json_object_put(ctx);
}

/* n nested sections over key s around "X"; the caller frees it. */
static char *
nested(int n)
{
	size_t len = 0;
	char *s = malloc((size_t)n * 12 + 2);
	int i;

	if (s == NULL)
		exit(1);
	for (i = 0; i < n; i++, len += 6)
		memcpy(s + len, "{{#s}}", 6);
	s[len++] = 'X';
	for (i = 0; i < n; i++, len += 6)
		memcpy(s + len, "{{/s}}", 6);
	s[len] = '\0';
	return s;
}

static void
test_limits(void)
{
	struct json_object *ctx, *arr, *big;
	struct tmpl_buf b;
	char *text, *chunk;
	int i, rc;

	text = nested(TMPL_DEPTH_MAX);
	tap_is_str(rs(text, "{\"s\":true}"), "X",
	    "TMPL_DEPTH_MAX nested sections render");
	free(text);
	text = nested(TMPL_DEPTH_MAX + 1);
	is_err(rs(text, "{\"s\":true}"), "sections nested deeper than",
	    "one more nested section is refused");
	free(text);
	text = nested(5000);
	is_err(rs(text, "{\"s\":true}"), "sections nested deeper than",
	    "5000 nested sections refused without a crash");
	free(text);

	/* Deep data through a recursive partial: bounded by depth. */
	{
		struct json_object *root = json_object_new_object(), *cur;

		cur = root;
		json_object_object_add(cur, "name", json_object_new_string("n"));
		for (i = 0; i < 200; i++) {
			struct json_object *kid = json_object_new_object();
			struct json_object *kids = json_object_new_array();

			json_object_object_add(kid, "name",
			    json_object_new_string("n"));
			json_object_array_add(kids, kid);
			json_object_object_add(cur, "kids", kids);
			cur = kid;
		}
		tmpl_buf_init(&b);
		rc = tmpl_render(set, "node", root, &b, errbuf, sizeof(errbuf));
		tap_ok(rc == -1 && strstr(errbuf, "nesting deeper than"),
		    "deep tree through a recursive partial hits the limit");
		tmpl_buf_free(&b);
		json_object_put(root);
	}

	/* Output cap: 9 copies of 1 MiB is over TMPL_OUT_MAX. */
	chunk = malloc(1024 * 1024 + 1);
	if (chunk == NULL)
		exit(1);
	memset(chunk, 'a', 1024 * 1024);
	chunk[1024 * 1024] = '\0';
	ctx = json_object_new_object();
	big = json_object_new_string(chunk);
	json_object_object_add(ctx, "big", big);
	arr = json_object_new_array();
	for (i = 0; i < 9; i++)
		json_object_array_add(arr, json_object_new_int(i));
	json_object_object_add(ctx, "l", arr);
	tmpl_buf_init(&b);
	rc = tmpl_render_string(set, "{{#l}}{{big}}{{/l}}", ctx, &b, errbuf,
	    sizeof(errbuf));
	tap_ok(rc == -1 && strstr(errbuf, "output larger than"),
	    "output over TMPL_OUT_MAX is an error");
	tap_ok(b.len == 0, "and nothing is left in out");
	rc = tmpl_render_string(set, "{{#l}}{{{big}}}{{/l}}", ctx, &b, errbuf,
	    sizeof(errbuf));
	tap_is_int(rc, -1, "raw output is capped too");
	rc = tmpl_render_string(set, "{{big}}{{big}}", ctx, &b, errbuf,
	    sizeof(errbuf));
	tap_ok(rc == 0 && b.len == 2 * 1024 * 1024,
	    "output under the cap is fine");
	tmpl_buf_free(&b);
	json_object_put(ctx);
	free(chunk);

	/* Nested loops that print nothing still terminate. */
	ctx = json_object_new_object();
	arr = json_object_new_array();
	for (i = 0; i < 200; i++)
		json_object_array_add(arr, json_object_new_int(i));
	json_object_object_add(ctx, "a", arr);
	tmpl_buf_init(&b);
	rc = tmpl_render_string(set, "{{#a}}{{#a}}{{#a}}{{#a}}{{/a}}{{/a}}"
	    "{{/a}}{{/a}}", ctx, &b, errbuf, sizeof(errbuf));
	tap_ok(rc == -1 && strstr(errbuf, "work limit exceeded"),
	    "200^4 empty iterations hit the work limit");
	tmpl_buf_free(&b);
	json_object_put(ctx);
}

static void
test_files(void)
{
	char big[UTIL_PATH_MAX];
	char *text;
	struct tmpl_set *s2;

	s2 = tmpl_set_new("/nonexistent/t6001", errbuf, sizeof(errbuf));
	tap_ok(s2 == NULL && errbuf[0] != '\0', "missing directory refused");
	tmpl_set_free(NULL);	/* harmless: a crash would end the test */

	/* A file larger than TMPL_FILE_MAX is refused, not truncated. */
	text = malloc(TMPL_FILE_MAX + 2);
	if (text == NULL)
		exit(1);
	memset(text, 'x', TMPL_FILE_MAX + 1);
	text[TMPL_FILE_MAX + 1] = '\0';
	put(tdir, "huge.html", text);
	free(text);
	is_err(rn("huge", NULL), "larger than", "over-size template refused");

	/* A directory where a template should be is an error, not a crash. */
	if (util_fmt(big, sizeof(big), "%s/dir.html", tdir) == 0 &&
	    util_mkdirs(big, 0755) == 0)
		is_err(rn("dir", NULL), "cannot read template 'dir'",
		    "directory named like a template");
	else
		tap_skip("cannot make a directory");

	/* Templates with NUL bytes inside are rendered byte for byte. */
	{
		char path[UTIL_PATH_MAX];
		struct tmpl_buf b;
		int rc;

		util_fmt(path, sizeof(path), "%s/nul.html", tdir);
		util_write_file_atomic(path, "a\0{{x}}", 7, 0644);
		tmpl_buf_init(&b);
		rc = tmpl_render(set, "nul", NULL, &b, errbuf, sizeof(errbuf));
		tap_ok(rc == 0 && b.len == 2 && memcmp(b.data, "a\0", 3) == 0,
		    "NUL byte in a template file kept");
		tmpl_buf_free(&b);
	}
}

int
main(void)
{
	if (mkdtemp(scratch) == NULL ||
	    util_fmt(tdir, sizeof(tdir), "%s/tmpl", scratch) == -1 ||
	    util_mkdirs(tdir, 0755) == -1) {
		printf("Bail out! cannot make scratch dir\n");
		return 1;
	}
	/* One level above the template dir: must never be reachable. */
	put(scratch, "secret.html", "SECRET");
	set = tmpl_set_new(tdir, errbuf, sizeof(errbuf));
	if (set == NULL) {
		printf("Bail out! tmpl_set_new: %s\n", errbuf);
		return 1;
	}

	test_buf();
	test_names();
	test_escape();
	test_values();
	test_sections();
	test_inverted();
	test_dotted_and_stack();
	test_comments();
	test_partials();
	test_cache();
	test_layout();
	test_malformed();
	test_garbage();
	test_limits();
	test_files();

	tmpl_set_free(set);
	util_rmtree(scratch);
	return tap_done();
}
