/* coverage-gap map runtime (MIT, part of coverage-gap).
 *
 * Every string that reaches innerHTML here was HTML-escaped in Python
 * (coverage.maps); raw data never does. Kept ES5 so old office browsers run it.
 */
(function () {
  "use strict";
  if (window.covgap) { return; }

  function fold(s) {
    s = String(s == null ? "" : s);
    if (s.normalize) { s = s.normalize("NFD"); }
    return s.replace(/[\u0300-\u036f]/g, "")
      .replace(/\u0111/g, "d").replace(/\u0110/g, "D")
      .toLowerCase().replace(/\s+/g, " ").trim();
  }

  function swatch(color) {
    return '<i class="covgap-swatch" style="background:' + color + '"></i>';
  }

  function addControl(map, position, className, html) {
    var Ctl = L.Control.extend({
      onAdd: function () {
        var div = L.DomUtil.create("div", className);
        div.innerHTML = html;
        L.DomEvent.disableClickPropagation(div);
        L.DomEvent.disableScrollPropagation(div);
        return div;
      }
    });
    var ctl = new Ctl({position: position});
    ctl.addTo(map);
    return ctl;
  }

  function villages(map, data, o) {
    function styleOf(f) {
      return {
        color: o.outline, weight: 0.6, opacity: 0.9,
        fillColor: o.colors[f.properties.c] || o.colors.unknown, fillOpacity: 0.8
      };
    }
    var layer = L.geoJSON(data, {
      style: styleOf,
      pointToLayer: function (f, latlng) { return L.circleMarker(latlng, {radius: 6}); }
    });
    layer.bindTooltip(function (l) {
      var p = l.feature.properties;
      var h = "<b>" + p.n + "</b><br>" + (o.classes[p.c] || o.classes.unknown);
      if (p.e) { h += "<br><span class=\"covgap-expl\">" + p.e + "</span>"; }
      return h;
    }, {sticky: true, className: "covgap-tooltip"});
    layer.bindPopup(function (l) {
      var p = l.feature.properties, rows = [];
      for (var i = 0; i < o.fields.length; i++) {
        if (p.v[i] !== "") {
          rows.push("<tr><th>" + o.fields[i] + "</th><td>" + p.v[i] + "</td></tr>");
        }
      }
      return "<table class=\"covgap-popup\">" + rows.join("") + "</table>";
    }, {maxWidth: 380});
    layer.on("mouseover", function (e) { e.layer.setStyle({weight: 2.5, color: "#000"}); });
    layer.on("mouseout", function (e) { layer.resetStyle(e.layer); });

    // legend: classes with counts
    var h = "<div class=\"covgap-legend-title\">" + o.legendTitle + "</div>";
    for (var i = 0; i < o.legend.length; i++) {
      var it = o.legend[i];
      h += "<div class=\"covgap-legend-row\" data-class=\"" + it[0] + "\">" + swatch(o.colors[it[0]]) +
        it[1] + " <span class=\"covgap-count\">(" + it[2] + ")</span></div>";
    }
    if (o.note) { h += "<div class=\"covgap-legend-note\">" + o.note + "</div>"; }
    addControl(map, "bottomright", "covgap-legend covgap-box", h);
    if (o.title) { addControl(map, "topleft", "covgap-title covgap-box", o.title); }
    if (o.search) { search(map, layer, o); }
    map.on("overlayremove", function (e) { if (e.layer === layer) { map.closePopup(); } });
    window.covgapVillageLayer = layer;
    window.covgapMap = map;
    if (o.fit) {
      var b = layer.getBounds();
      if (b.isValid()) { map.fitBounds(b, {padding: [10, 10]}); }
    }
    return layer;
  }

  function search(map, layer, o) {
    var index = [];
    layer.eachLayer(function (l) {
      var p = l.feature.properties;
      index.push({k: p.k || fold(p.n), l: l});
    });
    var ctl = addControl(map, "topleft", "covgap-search covgap-box",
      "<input type=\"search\" class=\"covgap-search-input\" autocomplete=\"off\" placeholder=\"" +
      o.searchPlaceholder + "\" aria-label=\"" + o.searchPlaceholder + "\">" +
      "<div class=\"covgap-search-results\"></div>");
    var box = ctl.getContainer();
    var input = box.querySelector("input"), out = box.querySelector(".covgap-search-results");
    var hits = [];
    function go(l) {
      var target = l.getBounds ? l.getBounds() : L.latLngBounds([l.getLatLng()]);
      map.fitBounds(target, {maxZoom: 15});
      // the popup is bound on the group: open it as a click on this village would
      l.fire("click", {latlng: l.getBounds ? target.getCenter() : l.getLatLng()}, true);
    }
    function run() {
      var q = fold(input.value);
      out.innerHTML = "";
      hits = [];
      if (!q) { return; }
      for (var i = 0; i < index.length && hits.length < 10; i++) {
        if (index[i].k.indexOf(q) !== -1) { hits.push(index[i].l); }
      }
      if (!hits.length) {
        out.innerHTML = "<div class=\"covgap-search-none\">" + o.searchNone + "</div>";
        return;
      }
      for (var j = 0; j < hits.length; j++) {
        var d = L.DomUtil.create("div", "covgap-search-hit", out);
        d.innerHTML = hits[j].feature.properties.n;  // escaped in Python
        d.onclick = (function (l) { return function () { go(l); }; })(hits[j]);
      }
    }
    L.DomEvent.on(input, "input", run);
    L.DomEvent.on(input, "keydown", function (e) {
      if (e.key === "Enter" && hits.length) { go(hits[0]); }
    });
  }

  function points(map, data, o) {
    // markercluster needs a maximum zoom, which a map without tiles lacks
    if (o.cluster && !map.options.maxZoom) { map.options.maxZoom = 19; }
    var group = o.cluster ? L.markerClusterGroup({chunkedLoading: true}) : L.featureGroup();
    for (var i = 0; i < data.length; i++) {
      var d = data[i];  // [lat, lon, colour, tooltip html]
      var mk = L.circleMarker([d[0], d[1]], {
        radius: o.radius, color: "#222", weight: 0.8, fillColor: d[2], fillOpacity: 0.9
      });
      if (d[3]) { mk.bindTooltip(d[3]); }
      group.addLayer(mk);
    }
    return group;
  }

  function plan(map, data, o) {
    var group = L.featureGroup();
    for (var i = 0; i < data.length; i++) {
      var d = data[i];  // [lat, lon, label html, tooltip html]
      var icon = L.divIcon({className: "covgap-site", html: "<span>" + d[2] + "</span>",
        iconSize: [24, 24], iconAnchor: [12, 12]});
      L.marker([d[0], d[1]], {icon: icon, title: ""}).bindTooltip(d[3]).addTo(group);
    }
    return group;
  }

  function outlines(map, data, o) {
    return L.geoJSON(data, {
      style: function () {
        return {color: o.color, weight: o.weight, opacity: 0.9, fill: false, dashArray: o.dash};
      },
      interactive: false
    });
  }

  function regions(map, data, o) {
    // the national index: one polygon per province, a popup linking to its page
    var layer = L.geoJSON(data, {
      style: function (f) {
        return {color: "#444", weight: 0.8, opacity: 1, fillColor: f.properties.f,
          fillOpacity: 0.85};
      }
    });
    layer.bindTooltip(function (l) {
      var p = l.feature.properties;
      return "<b>" + p.n + "</b><br>" + p.h;
    }, {sticky: true, className: "covgap-tooltip"});
    layer.bindPopup(function (l) {
      var p = l.feature.properties, h = "<b>" + p.n + "</b><br>" + p.h;
      if (p.u) { h += "<br><a class=\"covgap-open\" href=\"" + p.u + "\">" + o.open + "</a>"; }
      return h;
    });
    layer.on("mouseover", function (e) { e.layer.setStyle({weight: 2.5, color: "#000"}); });
    layer.on("mouseout", function (e) { layer.resetStyle(e.layer); });
    if (o.title) { addControl(map, "topleft", "covgap-title covgap-box", o.title); }
    window.covgapRegionLayer = layer;
    window.covgapMap = map;
    var b = layer.getBounds();
    if (b.isValid()) { map.fitBounds(b, {padding: [10, 10]}); }
    return layer;
  }

  window.covgap = {fold: fold, villages: villages, points: points, plan: plan,
    outlines: outlines, regions: regions, addControl: addControl};
})();
