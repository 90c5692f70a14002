package chart

import (
	"bytes"
	"fmt"
	"html/template"
	"math"
	"strconv"
	"time"

	"github.com/hookline/hookline/delivery"
)

// The drawing's box (viewBox units; the SVG scales to its container's width)
// and the plot inside it, leaving room for the axes' labels.
const (
	width      = 640
	height     = 220
	plotLeft   = 48
	plotRight  = 628
	plotTop    = 28
	plotBottom = 190
)

// Colours with enough contrast on white for the bars and lines, and their
// legend.
const (
	colourSucceeded = "#1a7f37"
	colourFailed    = "#cf222e"
	colourP50       = "#0969da"
	colourP99       = "#bc4c00"
	colourAxis      = "#57606a"
	colourGrid      = "#d0d7de"
)

// tick is a labelled mark of an axis, at a position of the drawing, with
// where its label goes.
type tick struct {
	At, LabelAt float64
	Label       string
}

// bar is one bucket's stacked bar: succeeded below, failed above.
type bar struct {
	X, W                   float64
	OKY, OKH, FailY, FailH float64
	Title                  string
}

// line is one latency series, in segments broken where a bucket had no
// response.
type line struct {
	Name, Colour string
	Segments     []string // each an SVG points list
	Dots         []point  // buckets with no neighbour to draw a segment to
}

type point struct{ X, Y float64 }

// drawing is what the templates draw.
type drawing struct {
	ID, Title, Empty string
	Width, Height    int
	Left, Right      float64
	Top, Bottom      float64
	// YLabelX and XLabelY place the axes' labels, CentreX and CentreY the
	// empty chart's note.
	YLabelX, XLabelY float64
	CentreX, CentreY float64
	YTicks, XTicks   []tick
	Bars             []bar
	Lines            []line
	Legend           []legendItem
	AxisColour       string
	GridColour       string
}

type legendItem struct {
	X, TextX     float64
	Colour, Name string
}

var svg = template.Must(template.New("svg").Parse(`<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {{.Width}} {{.Height}}" width="100%" role="img" aria-labelledby="{{.ID}}-title" font-family="system-ui, sans-serif" font-size="11">
<title id="{{.ID}}-title">{{.Title}}</title>
{{range .YTicks}}<line x1="{{$.Left}}" x2="{{$.Right}}" y1="{{.At}}" y2="{{.At}}" stroke="{{$.GridColour}}" stroke-width="1"/>
<text x="{{$.YLabelX}}" y="{{.LabelAt}}" text-anchor="end" fill="{{$.AxisColour}}">{{.Label}}</text>
{{end}}{{range .XTicks}}<text x="{{.At}}" y="{{$.XLabelY}}" text-anchor="middle" fill="{{$.AxisColour}}">{{.Label}}</text>
{{end}}<line x1="{{.Left}}" x2="{{.Right}}" y1="{{.Bottom}}" y2="{{.Bottom}}" stroke="{{.AxisColour}}" stroke-width="1"/>
{{range .Bars}}<g><title>{{.Title}}</title>{{if .OKH}}<rect class="succeeded" x="{{.X}}" y="{{.OKY}}" width="{{.W}}" height="{{.OKH}}" fill="` + colourSucceeded + `"/>{{end}}{{if .FailH}}<rect class="failed" x="{{.X}}" y="{{.FailY}}" width="{{.W}}" height="{{.FailH}}" fill="` + colourFailed + `"/>{{end}}</g>
{{end}}{{range .Lines}}{{$c := .Colour}}{{range .Segments}}<polyline class="latency" points="{{.}}" fill="none" stroke="{{$c}}" stroke-width="2" stroke-linejoin="round"/>
{{end}}{{range .Dots}}<circle cx="{{.X}}" cy="{{.Y}}" r="2.5" fill="{{$c}}"/>
{{end}}{{end}}{{range .Legend}}<rect x="{{.X}}" y="8" width="10" height="10" fill="{{.Colour}}"/><text x="{{.TextX}}" y="17" fill="{{$.AxisColour}}">{{.Name}}</text>
{{end}}{{with .Empty}}<text x="{{$.CentreX}}" y="{{$.CentreY}}" text-anchor="middle" fill="{{$.AxisColour}}" font-size="13">{{.}}</text>
{{end}}</svg>`))

// Outcomes draws a window's attempts as one stacked bar per bucket,
// succeeded (green) under failed (red), with a count axis, time labels (UTC)
// and a <title> that says what the chart shows for screen readers; each bar
// has its own <title> (the browser's tooltip) with its figures. The result
// is inline SVG without script or style, safe inside html/template.
func Outcomes(series []delivery.StatsBucket, window string) template.HTML {
	step, _ := delivery.StatsBucketWidth(window)
	d := frame("outcomes-"+window, series, step)
	var ok, failed, peak int
	for _, b := range series {
		ok, failed, peak = ok+b.Succeeded, failed+b.Failed, max(peak, b.Succeeded+b.Failed)
	}
	d.Title = fmt.Sprintf("Attempts per %s over the last %s: %d succeeded, %d failed.", unit(step), window, ok, failed)
	top := niceCeil(float64(peak))
	d.YTicks = yTicks(top, strconv.Itoa)
	slot := (d.Right - d.Left) / float64(max(len(series), 1))
	w := math.Max(1, slot*0.75)
	y := func(v int) float64 { return d.Bottom - float64(v)/float64(top)*(d.Bottom-d.Top) }
	for i, b := range series {
		okTop, failTop := y(b.Succeeded), y(b.Succeeded+b.Failed)
		d.Bars = append(d.Bars, bar{
			X: round(d.Left + slot*float64(i) + (slot-w)/2), W: round(w),
			OKY: round(okTop), OKH: round(d.Bottom - okTop), FailY: round(failTop), FailH: round(okTop - failTop),
			Title: fmt.Sprintf("%s: %d succeeded, %d failed", label(b.Start, step, true), b.Succeeded, b.Failed),
		})
	}
	if ok+failed == 0 {
		d.Empty = "No attempts in this window"
	}
	d.Legend = legend(d, []string{colourSucceeded, colourFailed}, []string{"succeeded", "failed"})
	return render(d)
}

// Latency draws a window's latency median and 99th percentile per bucket as
// two lines (milliseconds, of the attempts that got a response), broken
// where a bucket had none, with the same axes and accessible title as
// Outcomes.
func Latency(series []delivery.StatsBucket, window string) template.HTML {
	step, _ := delivery.StatsBucketWidth(window)
	d := frame("latency-"+window, series, step)
	peak, drawn := 0, false
	for _, b := range series {
		for _, v := range []*int{b.LatencyP50MS, b.LatencyP99MS} {
			if v != nil {
				peak, drawn = max(peak, *v), true
			}
		}
	}
	top := niceCeil(float64(peak))
	d.YTicks = yTicks(top, func(v int) string { return strconv.Itoa(v) + " ms" })
	slot := (d.Right - d.Left) / float64(max(len(series), 1))
	for _, l := range []struct {
		name, colour string
		value        func(delivery.StatsBucket) *int
	}{
		{"p50", colourP50, func(b delivery.StatsBucket) *int { return b.LatencyP50MS }},
		{"p99", colourP99, func(b delivery.StatsBucket) *int { return b.LatencyP99MS }},
	} {
		ln := line{Name: l.name, Colour: l.colour}
		var run []point
		flush := func() {
			switch len(run) {
			case 0:
			case 1:
				ln.Dots = append(ln.Dots, run[0])
			default:
				var pts bytes.Buffer
				for i, p := range run {
					if i > 0 {
						pts.WriteByte(' ')
					}
					fmt.Fprintf(&pts, "%g,%g", p.X, p.Y)
				}
				ln.Segments = append(ln.Segments, pts.String())
			}
			run = nil
		}
		for i, b := range series {
			v := l.value(b)
			if v == nil {
				flush()
				continue
			}
			run = append(run, point{round(d.Left + slot*(float64(i)+0.5)), round(d.Bottom - float64(*v)/float64(top)*(d.Bottom-d.Top))})
		}
		flush()
		d.Lines = append(d.Lines, ln)
	}
	d.Title = fmt.Sprintf("Latency per %s over the last %s, median and 99th percentile, in milliseconds.", unit(step), window)
	if !drawn {
		d.Empty = "No responses in this window"
	}
	d.Legend = legend(d, []string{colourP50, colourP99}, []string{"p50", "p99"})
	return render(d)
}

// frame is a drawing's box and time axis: about six labels, on buckets
// evenly spaced, at their start.
func frame(id string, series []delivery.StatsBucket, step time.Duration) *drawing {
	d := &drawing{ID: id, Width: width, Height: height, Left: plotLeft, Right: plotRight, Top: plotTop, Bottom: plotBottom,
		YLabelX: plotLeft - 6, XLabelY: plotBottom + 16, CentreX: (plotLeft + plotRight) / 2, CentreY: (plotTop + plotBottom) / 2,
		AxisColour: colourAxis, GridColour: colourGrid}
	n := len(series)
	if n == 0 {
		return d
	}
	slot := (d.Right - d.Left) / float64(n)
	every := max(1, n/6)
	for i := n - 1; i >= 0; i -= every { // the newest bucket always labelled
		d.XTicks = append(d.XTicks, tick{At: round(d.Left + slot*(float64(i)+0.5)), Label: label(series[i].Start, step, false)})
	}
	return d
}

// yTicks is 0, half and the top of a count axis.
func yTicks(top int, format func(int) string) []tick {
	var ticks []tick
	for _, v := range []int{0, top / 2, top} {
		at := round(plotBottom - float64(v)/float64(top)*(plotBottom-plotTop))
		ticks = append(ticks, tick{At: at, LabelAt: at + 4, Label: format(v)})
	}
	return ticks
}

// legend is a row of swatches and names above the plot, 90 units apart.
func legend(d *drawing, colours, names []string) []legendItem {
	var items []legendItem
	for i, name := range names {
		x := d.Left + 90*float64(i)
		items = append(items, legendItem{X: x, TextX: x + 14, Colour: colours[i], Name: name})
	}
	return items
}

// niceCeil is the smallest of 2, 4, 10, 20, 40, 100… (even, so that half of
// it is whole) at least v.
func niceCeil(v float64) int {
	top := 2
	for float64(top) < v {
		if strconv.Itoa(top)[0] == '4' {
			top = top / 4 * 10
		} else {
			top *= 2
		}
	}
	return top
}

// label is a bucket's start for the time axis, in UTC: the time of day for
// minutes and hours, the day and hour for 6-hour buckets; long adds the
// date and zone (a bar's title).
func label(start int64, step time.Duration, long bool) string {
	t := time.Unix(start, 0).UTC()
	switch {
	case long:
		return t.Format("Jan 2 15:04 MST")
	case step >= 6*time.Hour:
		return t.Format("Jan 2 15h")
	default:
		return t.Format("15:04")
	}
}

// unit names a bucket's width.
func unit(step time.Duration) string {
	switch step {
	case time.Minute:
		return "minute"
	case time.Hour:
		return "hour"
	default:
		return strconv.Itoa(int(step.Hours())) + " hours"
	}
}

func round(v float64) float64 { return math.Round(v*10) / 10 }

// render executes the template; it cannot fail on data the package built
// itself, and an empty chart is drawn rather than an error shown.
func render(d *drawing) template.HTML {
	var b bytes.Buffer
	if err := svg.Execute(&b, d); err != nil {
		return ""
	}
	return template.HTML(b.String()) // html/template escaped every value it put in
}
