"""Regenerates the Python-side expectations used by canonical_test.go.

Run by hand (python3 testdata/gen_golden.py) when cases are added; the Go
tests never run Python. Prints Go table rows for the tricky payloads and
rewrites python_float_repr.txt ("<json number> <json.dumps of its float>").
"""
import hashlib
import json
import random
import struct
import sys

CASES = [
    r'{"b":1,"a":2}',
    r'{ "z" : [ 3 , 2 , { "y" : null , "x" : true } ] , "a" : false }',
    r'{"empty_obj":{},"empty_arr":[],"nested":{"b":{"d":1,"c":2},"a":[{}]}}',
    '{"name":"Jos\u00e9","emoji":"\U0001F600","cjk":"\u65e5\u672c"}',
    r'{"s":"\u00e9 and \u00E9 and \u65e5"}',
    r'{"ctl":"\u0000\u0001\u001f\u007f\n\r\t\b\f\"\\\/ /"}',
    '{"del":"\x7f","nbsp":"\u00a0","ls":"\u2028","bom":"\ufeff","max":"\uffff"}',
    r'{"lone_high":"\ud800","lone_low":"\udc00x","high_then_ascii":"\ud800\u0041","pair":"\ud83d\ude00","upper_pair":"\uD83D\uDE00","two_highs":"\ud800\ud83d\ude00","low_high":"\udc00\ud800"}',
    '{"a":1,"B":2,"\u00e9":3,"\U0001F600":4,"\ue000":5,"\\ud800":6,"ab":7,"a\\u0000":8,"":9,"\uffff":10,"\U00010000":11}',
    r'{"ints":[1,-1,0,-0,12345678901234567890123456789,-98765432109876543210]}',
    r'{"floats":[1.0,-0.0,0.0,1e16,1E16,1.5e-05,0.0001,0.00001,123456789012345680.0,1e-400,-1e-400]}',
    r'{"floats2":[1.7976931348623157e308,5e-324,0.1,0.30000000000000004,100.0,1e15,9999999999999998.0,1e22,2.5E+3,-1.25e-7,1E-4,1e-5,0.5,3.14159,1e+16,12345.678e-3]}',
    r'{"floats3":[1.00000000000000000e+16,9007199254740993.0,2.2250738585072014e-308,4.9e-324,1e308,123e-20,1.0e0,0.000123456789]}',
    r'{"a":1,"a":2}',
    r'{"a":{"x":1},"\u0061":3}',
    r'{"t":true,"f":false,"n":null}',
    ' \t\n\r{\n  "k" : "v"\r\n}\t ',
    r'[1,"two",{"b":2,"a":1},[],null]',
    r'"just a string \u00e9"',
    r'3',
    r'-0',
    r'-0.0',
    r'{"url":"http://example.com/a/b?c=d&e=<f>"}',
    r'{"deep":[[[[[[[[[[{"k":[[[[[1]]]]]}]]]]]]]]]]}',
]


def canonical(s):
    return json.dumps(json.loads(s), sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def go_raw(s):
    assert "`" not in s
    return "`" + s + "`"


def main():
    for s in CASES:
        c = canonical(s)
        h = hashlib.sha256(c.encode("ascii")).hexdigest()
        print("\t{in: %s, want: %s, sha: %s}," % (go_raw(s), go_raw(c), json.dumps(h)))

    rnd = random.Random(20240601)
    lines = []
    for _ in range(1500):
        bits = rnd.getrandbits(64)
        f = struct.unpack("<d", struct.pack("<Q", bits))[0]
        if f != f or f in (float("inf"), float("-inf")):
            continue
        lines.append("%.17e" % f)
    for _ in range(1500):
        digits = rnd.randint(1, 17)
        mant = str(rnd.randint(1, 10 ** digits - 1))
        exp = rnd.randint(-30, 30)
        lines.append("%s%se%d" % ("-" if rnd.random() < 0.3 else "", mant, exp))
    for e in range(-330, 310):
        lines.append("1e%d" % e)
        lines.append("9.999999999999999e%d" % e)
    with open(sys.argv[1] if len(sys.argv) > 1 else "python_float_repr.txt", "w") as out:
        for s in lines:
            f = json.loads(s)
            if f in (float("inf"), float("-inf")):
                continue
            out.write("%s %s\n" % (s, json.dumps(f)))


main()
