package chart_test

import (
	"encoding/xml"
	"html/template"
	"io"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hookline/hookline/api/chart"
	"github.com/hookline/hookline/delivery"
)

// element is an SVG element as encoding/xml reads it: its name, attributes
// and text.
type element struct {
	name  string
	attrs map[string]string
	text  string
}

// parse reads an SVG document, failing the test unless it is well-formed
// XML, and returns its elements in document order.
func parse(t *testing.T, svg template.HTML) []element {
	t.Helper()
	dec := xml.NewDecoder(strings.NewReader(string(svg)))
	var out []element
	var open []int
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("not well-formed SVG: %v\n%s", err, svg)
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			e := element{name: tok.Name.Local, attrs: map[string]string{}}
			for _, a := range tok.Attr {
				e.attrs[a.Name.Local] = a.Value
			}
			out = append(out, e)
			open = append(open, len(out)-1)
		case xml.EndElement:
			open = open[:len(open)-1]
		case xml.CharData:
			if len(open) > 0 {
				out[open[len(open)-1]].text += string(tok)
			}
		}
	}
	return out
}

func of(elements []element, name, class string) []element {
	var out []element
	for _, e := range elements {
		if e.name == name && (class == "" || e.attrs["class"] == class) {
			out = append(out, e)
		}
	}
	return out
}

func num(t *testing.T, s string) float64 {
	t.Helper()
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		t.Fatalf("not a number: %q", s)
	}
	return v
}

// series is a 1h window's 60 buckets ending at 12:59 UTC.
func series() []delivery.StatsBucket {
	start := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	out := make([]delivery.StatsBucket, 60)
	for i := range out {
		out[i].Start = start.Add(time.Duration(i) * time.Minute).Unix()
	}
	return out
}

func TestOutcomesDrawsStackedBars(t *testing.T) {
	s := series()
	s[10].Succeeded, s[10].Failed = 30, 10
	s[59].Succeeded = 20
	elements := parse(t, chart.Outcomes(s, "1h"))
	title := elements[1]
	if elements[0].name != "svg" || elements[0].attrs["role"] != "img" || title.name != "title" ||
		title.text != "Attempts per minute over the last 1h: 50 succeeded, 10 failed." ||
		elements[0].attrs["aria-labelledby"] != title.attrs["id"] {
		t.Errorf("svg %v with title %v: want an accessible image titled with the totals", elements[0].attrs, title)
	}
	ok, failed := of(elements, "rect", "succeeded"), of(elements, "rect", "failed")
	if len(ok) != 2 || len(failed) != 1 {
		t.Fatalf("%d succeeded and %d failed bars, want 2 and 1", len(ok), len(failed))
	}
	// The axis tops at 40 (the tallest bar, 30 + 10): the bar of 30 is three
	// quarters of the plot, its failed part stacked on it a quarter.
	full := num(t, ok[0].attrs["height"]) + num(t, failed[0].attrs["height"])
	if r := num(t, ok[0].attrs["height"]) / full; r < .74 || r > .76 {
		t.Errorf("succeeded is %.2f of the stacked bar, want .75", r)
	}
	if num(t, failed[0].attrs["y"])+num(t, failed[0].attrs["height"]) != num(t, ok[0].attrs["y"]) {
		t.Errorf("the failed part %v does not sit on the succeeded part %v", failed[0].attrs, ok[0].attrs)
	}
	if h := num(t, ok[1].attrs["height"]); h*1.5 < num(t, ok[0].attrs["height"])-0.2 || h*1.5 > num(t, ok[0].attrs["height"])+0.2 {
		t.Errorf("a bar of 20 is %.1f high beside %.1f for 30", h, num(t, ok[0].attrs["height"]))
	}
	var texts []string
	for _, e := range of(elements, "text", "") {
		texts = append(texts, e.text)
	}
	joined := strings.Join(texts, "|")
	for _, want := range []string{"12:59", "0", "20", "40", "succeeded", "failed"} {
		if !strings.Contains("|"+joined+"|", "|"+want+"|") {
			t.Errorf("no label %q among %q", want, texts)
		}
	}
	var tips []string
	for _, e := range of(elements, "title", "") {
		tips = append(tips, e.text)
	}
	if !strings.Contains(strings.Join(tips, "\n"), "Dec 2 12:10 UTC: 30 succeeded, 10 failed") {
		t.Errorf("no bar says its figures: %q", tips)
	}
}

func TestLatencyDrawsBrokenLines(t *testing.T) {
	s := series()
	v := func(n int) *int { return &n }
	for i := 0; i < 5; i++ { // a run of five buckets, then a gap, then one alone
		s[i].LatencyP50MS, s[i].LatencyP99MS = v(40+i), v(200)
	}
	s[30].LatencyP50MS, s[30].LatencyP99MS = v(50), v(400)
	elements := parse(t, chart.Latency(s, "1h"))
	lines, dots := of(elements, "polyline", "latency"), of(elements, "circle", "")
	if len(lines) != 2 || len(dots) != 2 {
		t.Fatalf("%d lines and %d dots, want a segment and a dot for each of p50 and p99", len(lines), len(dots))
	}
	for _, l := range lines {
		if n := len(strings.Fields(l.attrs["points"])); n != 5 {
			t.Errorf("a segment of %d points, want 5: %q", n, l.attrs["points"])
		}
	}
	if !strings.Contains(elements[1].text, "Latency per minute over the last 1h") {
		t.Errorf("title %q", elements[1].text)
	}
}

func TestEmptyWindowsSaySo(t *testing.T) {
	for _, c := range []struct {
		svg  template.HTML
		want string
	}{
		{chart.Outcomes(series(), "1h"), "No attempts in this window"},
		{chart.Latency(series(), "1h"), "No responses in this window"},
		{chart.Outcomes(nil, "7d"), "No attempts in this window"},
	} {
		found := false
		for _, e := range of(parse(t, c.svg), "text", "") {
			found = found || e.text == c.want
		}
		if !found {
			t.Errorf("an empty chart does not say %q:\n%s", c.want, c.svg)
		}
	}
}

// TestChartsAreSafeInTemplates embeds both charts in an html/template page:
// they arrive unescaped (template.HTML), carry no script, and 7d buckets are
// labelled by day and hour.
func TestChartsAreSafeInTemplates(t *testing.T) {
	start := time.Date(2026, 11, 25, 18, 0, 0, 0, time.UTC)
	s := make([]delivery.StatsBucket, 28)
	for i := range s {
		s[i] = delivery.StatsBucket{Start: start.Add(time.Duration(i) * 6 * time.Hour).Unix(), Succeeded: i}
	}
	page := template.Must(template.New("").Parse(`<main>{{.Outcomes}}{{.Latency}}</main>`))
	var b strings.Builder
	if err := page.Execute(&b, map[string]template.HTML{"Outcomes": chart.Outcomes(s, "7d"), "Latency": chart.Latency(s, "7d")}); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	if strings.Count(out, "<svg ") != 2 || strings.Contains(out, "&lt;svg") || strings.Contains(strings.ToLower(out), "<script") {
		t.Errorf("charts not embedded as SVG elements:\n%s", out)
	}
	if !strings.Contains(out, ">Dec 2 12h<") {
		t.Errorf("the newest 6-hour bucket is not labelled Dec 2 12h:\n%s", out)
	}
}
