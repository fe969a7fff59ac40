/**
 * RFC 8785's own test vectors against our canonicalizer: every manifest, adapter and command signature
 * is over this text, so a node in another language must write exactly these bytes too.
 */
import { describe, expect, it } from "@effect/vitest"
import { canonicalize, canonicalizeWithin } from "../../src/domain/CanonicalJson.js"

/** Both entry points share one writer; each vector is checked through both. */
const both = (value: unknown): string => {
  const text = canonicalize(value)
  expect(canonicalizeWithin(value, { maxDepth: 1_000 })).toBe(text)
  return text
}

const utf8Hex = (text: string) => Buffer.from(text, "utf8").toString("hex")

/** The IEEE-754 double whose bits are `hex`, as RFC 8785 Appendix B lists them. */
const double = (hex: string) => {
  const view = new DataView(new ArrayBuffer(8))
  view.setBigUint64(0, BigInt(`0x${hex}`))
  return view.getFloat64(0)
}

describe("RFC 8785 numbers (Appendix B: ECMAScript Number.prototype.toString)", () => {
  const table: ReadonlyArray<readonly [string, string]> = [
    ["0000000000000000", "0"],
    ["8000000000000000", "0"], // minus zero
    ["0000000000000001", "5e-324"], // smallest positive
    ["8000000000000001", "-5e-324"],
    ["7fefffffffffffff", "1.7976931348623157e+308"], // largest
    ["ffefffffffffffff", "-1.7976931348623157e+308"],
    ["4340000000000000", "9007199254740992"], // 2^53
    ["c340000000000000", "-9007199254740992"],
    ["4430000000000000", "295147905179352830000"], // ~2^68: integers below 1e21 keep their digits
    ["44b52d02c7e14af5", "9.999999999999997e+22"],
    ["44b52d02c7e14af6", "1e+23"],
    ["44b52d02c7e14af7", "1.0000000000000001e+23"],
    ["444b1ae4d6e2ef4e", "999999999999999700000"],
    ["444b1ae4d6e2ef4f", "999999999999999900000"],
    ["444b1ae4d6e2ef50", "1e+21"],
    ["3eb0c6f7a0b5ed8c", "9.999999999999997e-7"],
    ["3eb0c6f7a0b5ed8d", "0.000001"],
    ["41b3de4355555553", "333333333.3333332"],
    ["41b3de4355555554", "333333333.33333325"],
    ["41b3de4355555555", "333333333.3333333"],
    ["41b3de4355555556", "333333333.3333334"],
    ["41b3de4355555557", "333333333.33333343"],
    ["becbf647612f3696", "-0.0000033333333333333333"],
    ["43143ff3c1cb0959", "1424953923781206.2"] // round to even
  ]

  it("writes each double of the table as the RFC does", () => {
    for (const [bits, expected] of table) expect(both(double(bits)), bits).toBe(expected)
    expect(both([double("8000000000000000")])).toBe("[0]")
  })

  it("switches to exponent form below 1e-6 and from 1e21, as ECMAScript does", () => {
    expect(both([1e-7, 0.000001, 1e20, 1e21, 1.5e300, 2e-3, 4.5, 1e30])).toBe(
      "[1e-7,0.000001,100000000000000000000,1e+21,1.5e+300,0.002,4.5,1e+30]"
    )
  })

  it("refuses NaN and the infinities, which JSON cannot carry (the table's 7fffffffffffffff and 7ff0000000000000)", () => {
    for (const value of [double("7fffffffffffffff"), double("7ff0000000000000"), Number.NEGATIVE_INFINITY]) {
      expect(() => canonicalize({ value })).toThrow("cannot canonicalize non-finite number")
      expect(() => canonicalizeWithin({ value })).toThrow("cannot canonicalize non-finite number")
    }
  })
})

describe("RFC 8785 strings (3.2.2.2)", () => {
  it("escapes only the quote, the backslash and the controls: the five short forms, the rest as lowercase \\u00xx", () => {
    const controls = Array.from({ length: 0x20 }, (_, code) => String.fromCharCode(code)).join("")
    expect(both(controls)).toBe(
      String.raw`"\u0000\u0001\u0002\u0003\u0004\u0005\u0006\u0007\b\t\n\u000b\f\r\u000e\u000f` +
        String.raw`\u0010\u0011\u0012\u0013\u0014\u0015\u0016\u0017\u0018\u0019\u001a\u001b\u001c\u001d\u001e\u001f"`
    )
    expect(both(`"\\/`)).toBe(String.raw`"\"\\/"`)
    // DEL, non-ASCII and astral characters are written as themselves (in UTF-8), never escaped.
    expect(utf8Hex(both("\u007f\u0080é€\ud83d\ude00"))).toBe(
      "22" + "7f" + "c280" + "c3a9" + "e282ac" + "f09f9880" + "22"
    )
  })

  it("does not normalize Unicode (testdata/unicode.json: A + combining ring stays two code points)", () => {
    expect(utf8Hex(both({ "Unnormalized Unicode": "A\u030a" }))).toBe(utf8Hex(`{"Unnormalized Unicode":"A\u030a"}`))
    expect(both({ "Unnormalized Unicode": "A\u030a" })).not.toBe(both({ "Unnormalized Unicode": "\u00c5" }))
  })

  // RFC 8785 asks an implementation to stop on a lone surrogate; ours writes it as JSON.stringify does
  // (CanonicalJson.ts says why), so the text stays the same on every node and is well-formed UTF-8.
  it("writes a lone surrogate as its \\u escape, in values and in keys", () => {
    expect(both(["\ud800", "a\udead", "\udbff\ud800x"])).toBe(String.raw`["\ud800","a\udead","\udbff\ud800x"]`)
    expect(both({ "\udc00": 1 })).toBe(String.raw`{"\udc00":1}`)
  })
})

describe("RFC 8785 property sorting (3.2.3)", () => {
  it("orders the RFC's keys by UTF-16 code units, so U+1F600 (d83d de00) comes before U+FB33", () => {
    const input = JSON.parse(String.raw`{
      "\u20ac": "Euro Sign",
      "\r": "Carriage Return",
      "\ufb33": "Hebrew Letter Dalet With Dagesh",
      "1": "One",
      "\ud83d\ude00": "Emoji: Grinning Face",
      "\u0080": "Control",
      "\u00f6": "Latin Small Letter O With Diaeresis"
    }`)
    // The text itself: parsing it back would put "1" first again (JavaScript lists integer keys first).
    expect(both(input)).toBe(
      `{"\\r":"Carriage Return","1":"One","\u0080":"Control","\u00f6":"Latin Small Letter O With Diaeresis",` +
        `"\u20ac":"Euro Sign","\ud83d\ude00":"Emoji: Grinning Face","\ufb33":"Hebrew Letter Dalet With Dagesh"}`
    )
  })

  it("sorts nested objects too, ignores locale, and leaves array order alone", () => {
    expect(both({ b: { z: 1, y: [3, { d: 1, c: 2 }, 1] }, a: "x", B: 0, "": true })).toBe(
      `{"":true,"B":0,"a":"x","b":{"y":[3,{"c":2,"d":1},1],"z":1}}`
    )
  })
})

// The input and output files of the reference implementation's test data, github:cyberphone/json-canonicalization
// at 19d51d7fe467d4706a3ff08adf8a748f29fc21e0, testdata/input/*.json and testdata/outhex/*.txt (expected UTF-8 bytes).
const REFERENCE: ReadonlyArray<readonly [string, string, string]> = [
  [
    "arrays",
    String.raw`[
  56,
  {
    "d": true,
    "10": null,
    "1": [ ]
  }
]`,
    "5b35362c7b2231223a5b5d2c223130223a6e756c6c2c2264223a747275657d5d"
  ],
  [
    "french",
    String.raw`{
  "peach": "This sorting order",
  "péché": "is wrong according to French",
  "pêche": "but canonicalization MUST",
  "sin":   "ignore locale"
}`,
    "7b227065616368223a225468697320736f7274696e67206f72646572222c2270c3a96368c3a9223a2269732077726f6e" +
    "67206163636f7264696e6720746f204672656e6368222c2270c3aa636865223a226275742063616e6f6e6963616c697a" +
    "6174696f6e204d555354222c2273696e223a2269676e6f7265206c6f63616c65227d"
  ],
  [
    "structures",
    String.raw`{
  "1": {"f": {"f": "hi","F": 5} ,"\n": 56.0},
  "10": { },
  "": "empty",
  "a": { },
  "111": [ {"e": "yes","E": "no" } ],
  "A": { }
}`,
    "7b22223a22656d707479222c2231223a7b225c6e223a35362c2266223a7b2246223a352c2266223a226869227d7d2c22" +
    "3130223a7b7d2c22313131223a5b7b2245223a226e6f222c2265223a22796573227d5d2c2241223a7b7d2c2261223a7b" +
    "7d7d"
  ],
  [
    "unicode",
    String.raw`{
  "Unnormalized Unicode":"A\u030a"
}`,
    "7b22556e6e6f726d616c697a656420556e69636f6465223a2241cc8a227d"
  ],
  [
    // The RFC's own example of 3.2.4, with the bytes it lists.
    "values",
    String.raw`{
  "numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],
  "string": "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/",
  "literals": [null, true, false]
}`,
    "7b226c69746572616c73223a5b6e756c6c2c747275652c66616c73655d2c226e756d62657273223a5b33333333333333" +
    "33332e333333333333332c31652b33302c342e352c302e3030322c31652d32375d2c22737472696e67223a22e282ac24" +
    "5c75303030665c6e4127425c225c5c5c5c5c222f227d"
  ],
  [
    "weird",
    String.raw`{
  "\u20ac": "Euro Sign",
  "\r": "Carriage Return",
  "\u000a": "Newline",
  "1": "One",
  "\u0080": "Control\u007f",
  "\ud83d\ude02": "Smiley",
  "\u00f6": "Latin Small Letter O With Diaeresis",
  "\ufb33": "Hebrew Letter Dalet With Dagesh",
  "</script>": "Browser Challenge"
}`,
    "7b225c6e223a224e65776c696e65222c225c72223a2243617272696167652052657475726e222c2231223a224f6e6522" +
    "2c223c2f7363726970743e223a2242726f77736572204368616c6c656e6765222c22c280223a22436f6e74726f6c7f22" +
    "2c22c3b6223a224c6174696e20536d616c6c204c6574746572204f205769746820446961657265736973222c22e282ac" +
    "223a224575726f205369676e222c22f09f9882223a22536d696c6579222c22efacb3223a22486562726577204c657474" +
    "65722044616c6574205769746820446167657368227d"
  ]
]

describe("RFC 8785 reference test data", () => {
  it("writes exactly the expected bytes for each of the reference implementation's inputs", () => {
    for (const [name, input, expected] of REFERENCE) expect(utf8Hex(both(JSON.parse(input))), name).toBe(expected)
  })

  it("writes the RFC's 3.2.4 example as the text it gives", () => {
    const input = JSON.parse(REFERENCE.find(([name]) => name === "values")![1])
    expect(both(input)).toBe(
      String
        .raw`{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],"string":"€$\u000f\nA'B\"\\\\\"/"}`
    )
  })
})
