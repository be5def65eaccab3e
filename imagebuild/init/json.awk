# json.awk: print one value of the JSON document on stdin.
#
#   awk -v path=Params.greeting -f /etc/ironcast/json.awk < metadata.json
#
# path is a dot-separated list of object keys (a key containing a dot
# cannot be reached). A string value is printed unescaped, a number, true
# or false as written, an object or array as its raw JSON text. The exit
# status is 1 when the path does not exist or the value is null, 2 when
# the document is not the JSON this reader understands.
#
# Busybox has no jq; this is the smallest reader that does not guess: it
# walks the document instead of grepping it, so a key nested deeper (or
# appearing inside a string) is never mistaken for the one asked for.

{ doc = doc $0 "\n" }

END {
	n = length(doc)
	i = skip_ws(1)
	nkeys = split(path, keys, ".")
	if (path == "") nkeys = 0
	for (k = 1; k <= nkeys; k++) {
		if (substr(doc, i, 1) != "{") exit 1
		i = find_member(i, keys[k])
		if (i == 0) exit 1
	}
	c = substr(doc, i, 1)
	e = skip_value(i)
	if (e == 0) exit 2
	if (c == "\"") {
		printf "%s\n", unescape(substr(doc, i + 1, e - i - 2))
	} else if (substr(doc, i, 4) == "null") {
		exit 1
	} else {
		printf "%s\n", substr(doc, i, e - i)
	}
	exit 0
}

function skip_ws(i) {
	while (i <= n && index(" \t\r\n", substr(doc, i, 1)) > 0) i++
	return i
}

# skip_string returns the index just past the string starting at i.
function skip_string(i,    c) {
	i++
	while (i <= n) {
		c = substr(doc, i, 1)
		if (c == "\\") i += 2
		else if (c == "\"") return i + 1
		else i++
	}
	return 0
}

# skip_value returns the index just past the value starting at i, 0 when
# the document ends first.
function skip_value(i,    c, depth) {
	c = substr(doc, i, 1)
	if (c == "\"") return skip_string(i)
	if (c == "{" || c == "[") {
		depth = 0
		while (i <= n) {
			c = substr(doc, i, 1)
			if (c == "\"") {
				i = skip_string(i)
				if (i == 0) return 0
				continue
			}
			if (c == "{" || c == "[") depth++
			else if (c == "}" || c == "]") {
				depth--
				if (depth == 0) return i + 1
			}
			i++
		}
		return 0
	}
	while (i <= n && index(",}] \t\r\n", substr(doc, i, 1)) == 0) i++
	return i
}

# find_member returns the index of the value of key in the object that
# starts at i, 0 when the object has no such key.
function find_member(i, key,    e, name) {
	i = skip_ws(i + 1)
	while (i <= n && substr(doc, i, 1) == "\"") {
		e = skip_string(i)
		if (e == 0) return 0
		name = unescape(substr(doc, i + 1, e - i - 2))
		i = skip_ws(e)
		if (substr(doc, i, 1) != ":") return 0
		i = skip_ws(i + 1)
		if (name == key) return i
		i = skip_value(i)
		if (i == 0) return 0
		i = skip_ws(i)
		if (substr(doc, i, 1) != ",") return 0
		i = skip_ws(i + 1)
	}
	return 0
}

# unescape decodes the JSON escapes of a string body. \uXXXX outside
# ASCII is kept as written: the consumers are shell scripts printing it.
function unescape(s,    out, j, c, h) {
	out = ""
	for (j = 1; j <= length(s); j++) {
		c = substr(s, j, 1)
		if (c != "\\") { out = out c; continue }
		j++
		c = substr(s, j, 1)
		if (c == "n") out = out "\n"
		else if (c == "t") out = out "\t"
		else if (c == "r") out = out "\r"
		else if (c == "b" || c == "f") out = out ""
		else if (c == "u") {
			h = substr(s, j + 1, 4)
			if (h ~ /^00[0-7][0-9a-fA-F]$/) out = out sprintf("%c", hex(h))
			else out = out "\\u" h
			j += 4
		}
		else out = out c
	}
	return out
}

function hex(h,    v, j, d) {
	v = 0
	h = tolower(h)
	for (j = 1; j <= length(h); j++) {
		d = index("0123456789abcdef", substr(h, j, 1)) - 1
		v = v * 16 + d
	}
	return v
}
