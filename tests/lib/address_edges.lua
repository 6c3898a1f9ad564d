-- address_edges.lua: e-mail address values at the edges (case, blanks and
-- control characters around and inside, no or several @, look-alike and
-- sandbox domains, non-ASCII, over-long parts), for the tests that compare
-- an address function against its reference: tests/sql/sandbox_address.lua
-- and tests/sql/rewrite.lua. One list per run, shared: copy it to add to it.
return {
  "john.doe@company.com", "John.Doe@Company.COM", "ANNA@X.NO", "kari+crm@x.no",
  "a@mail.x.no", "@gmail.com", "x@Hotmail.COM", "n/a", "", " ", "@", "a@", "@@", " @ ",
  "a@b@c.no", "a@@b.no", "a@B@C.NO", "  spaced@x.no  ", "\tTab@X.no\n", "\v\f\rctl@x.no\r\f\v",
  "in side@x.no", "inside@x .no", "no at sign", "  no at sign  ", "\tno at\n",
  "john.doe_company.com@mailinator.com", "JOHN@MAILINATOR.COM", " a@MailInator.com ",
  "x@mailinator.com.", "x@mailinator.com.evil.org", "x@sub.mailinator.com", "x@mailinator.co",
  "x@sbx.example.org", "x@SBX.Example.ORG", "x@x", "x@X", "mailinator.com", "@mailinator.com",
  "æøå@ÆØÅ.no", "ÅSE@ÅS.NO", "名前@例え.JP", "o'brien@x.ie", "a.b-c_d%e@x-y.z", "\"q@q\"@x.no",
  string.rep("l", 300) .. "@" .. string.rep("D", 200) .. ".COM",
}
