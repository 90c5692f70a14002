// Package chart draws an endpoint's statistics (delivery.EndpointStats) as
// inline SVG for the server-rendered pages, the operator dashboard's and the
// merchant portal's: a stacked bar chart of attempts by outcome and a line
// chart of latency percentiles, per bucket of the window. The pages have no
// JavaScript and a strict Content-Security-Policy, so the charts are plain
// SVG elements with presentation attributes (no script, no style element),
// rendered through html/template so that every value is escaped; a <title>
// says what each chart shows to screen readers, and each bar's <title> gives
// its figures as the browser's tooltip.
package chart
