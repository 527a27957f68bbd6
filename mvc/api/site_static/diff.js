(function () {
  "use strict";
  var blob = JSON.parse(document.getElementById("records").textContent);
  var a = document.getElementById("a"), b = document.getElementById("b");
  var rows = document.getElementById("rows"), summary = document.getElementById("summary");
  function key(r) { return blob.sections.indexOf(r[0]) + "\u0000" + r[0] + "\u0000" + r[1]; }
  function index(list) { var m = {}; list.forEach(function (r) { m[key(r)] = r; }); return m; }
  function cell(tr, text, cls) {
    var td = document.createElement("td");
    td.textContent = text;
    if (cls) { td.className = cls; }
    tr.appendChild(td);
  }
  function draw() {
    var ia = index(blob.records[a.value] || []), ib = index(blob.records[b.value] || []);
    var keys = Object.keys(ia).concat(Object.keys(ib).filter(function (k) { return !(k in ia); }));
    keys.sort(function (x, y) {
      var dx = parseInt(x, 10) - parseInt(y, 10);
      return dx !== 0 ? dx : (x < y ? -1 : x > y ? 1 : 0);
    });
    while (rows.firstChild) { rows.removeChild(rows.firstChild); }
    var changed = 0;
    keys.forEach(function (k) {
      var ra = ia[k], rb = ib[k], r = ra || rb, tr = document.createElement("tr");
      var differs = !ra || !rb || ra[ra.length - 1] !== rb[rb.length - 1];  // identities: a digest of each value
      if (differs) { tr.className = "changed"; changed += 1; }
      cell(tr, r[0]); cell(tr, r[1], "mono");
      cell(tr, ra ? ra[2] : "(none)", ra ? "" : "missing");
      cell(tr, rb ? rb[2] : "(none)", rb ? "" : "missing");
      rows.appendChild(tr);
    });
    summary.textContent = changed + " of " + keys.length + " values differ between " + a.value + " and " + b.value;
    try { history.replaceState(null, "", "#" + encodeURIComponent(a.value) + ".." + encodeURIComponent(b.value)); }
    catch (e) { /* file:// pages may refuse it: the comparison is drawn all the same */ }
  }
  var pick = /^#([^.]*(?:\.[^.]+)*)\.\.(.*)$/.exec(location.hash);
  if (pick) {
    var va = decodeURIComponent(pick[1]), vb = decodeURIComponent(pick[2]);
    if (va in blob.records && vb in blob.records) { a.value = va; b.value = vb; }
  }
  a.addEventListener("change", draw);
  b.addEventListener("change", draw);
  draw();
})();
