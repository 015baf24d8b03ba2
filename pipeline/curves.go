package pipeline

import (
	"bufio"
	"fmt"
	"image/color"
	"math"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"

	"github.com/t2m/t2m/eval"
	"github.com/t2m/t2m/train"
)

// CurvesFile is the run folder's picture of its metrics, written at the end of Train.
const CurvesFile = "curves.png"

// WriteCurves draws a run's metrics.jsonl lines as a PNG at path, atomically: the training loss of each
// update and the eval loss of each epoch against the update, and below them, when the run evaluated
// during training (--eval-every), the pass rates of each evaluation. It uses gonum.org/v1/plot.
func WriteCurves(path, title string, metrics []train.Metric) error {
	var trainLoss, evalLoss plotter.XYs
	rates := map[string]plotter.XYs{}
	finite := func(v *float64) bool { return v != nil && !math.IsNaN(*v) && !math.IsInf(*v, 0) }
	for _, m := range metrics {
		switch {
		case finite(m.Loss):
			trainLoss = append(trainLoss, plotter.XY{X: float64(m.Step), Y: *m.Loss})
		case finite(m.EvalLoss):
			evalLoss = append(evalLoss, plotter.XY{X: float64(m.Step), Y: *m.EvalLoss})
		case m.Rates != nil:
			for k, v := range m.Rates {
				if !finite(&v) {
					continue
				}
				rates[k] = append(rates[k], plotter.XY{X: float64(m.Step), Y: v})
			}
		}
	}
	loss := plot.New()
	loss.Title.Text = title + ": loss"
	loss.X.Label.Text, loss.Y.Label.Text = "update", "loss"
	loss.Legend.Top = true
	loss.Y.Tick.Marker = preciseTicks{}
	if err := addLine(loss, "training loss", trainLoss, 0, false); err != nil {
		return err
	}
	if err := addLine(loss, "eval loss (epoch end)", evalLoss, 1, true); err != nil {
		return err
	}
	plots := [][]*plot.Plot{{loss}}
	if len(rates) > 0 {
		rp := plot.New()
		rp.Title.Text = "pass rates (--eval-every)"
		rp.X.Label.Text, rp.Y.Label.Text = "update", "pass rate"
		rp.Y.Min, rp.Y.Max = 0, 1
		rp.X.Min, rp.X.Max = loss.X.Min, loss.X.Max
		rp.Legend.Top, rp.Legend.Left = true, true
		i := 0
		for _, split := range EvalSplits {
			for _, l := range signalLayers {
				if xys, ok := rates[split+"_"+l.name]; ok {
					if err := addLine(rp, split+" "+l.name, xys, i, true); err != nil {
						return err
					}
					i++
				}
			}
		}
		plots = append(plots, []*plot.Plot{rp})
	}
	w, h := 8*vg.Inch, vg.Length(len(plots))*3.5*vg.Inch
	img := vgimg.New(w, h)
	dc := draw.New(img)
	dc.SetColor(color.White)
	dc.Fill(dc.Rectangle.Path())
	tiles := draw.Tiles{Rows: len(plots), Cols: 1, PadX: vg.Millimeter * 3, PadY: vg.Millimeter * 3, PadTop: vg.Millimeter * 2,
		PadBottom: vg.Millimeter * 2, PadLeft: vg.Millimeter * 2, PadRight: vg.Millimeter * 4}
	canvases := plot.Align(plots, tiles, dc)
	for r := range plots {
		plots[r][0].Draw(canvases[r][0])
	}
	if err := eval.WriteFileAtomic(path, func(bw *bufio.Writer) error {
		_, err := vgimg.PngCanvas{Canvas: img}.WriteTo(bw)
		return err
	}); err != nil {
		return fmt.Errorf("curves: %w", err)
	}
	return nil
}

// addLine adds xys (if any) to p as a line of the i-th plotutil color, with points when points is set,
// and names it in the legend.
func addLine(p *plot.Plot, name string, xys plotter.XYs, i int, points bool) error {
	if len(xys) == 0 {
		return nil
	}
	l, err := plotter.NewLine(xys)
	if err != nil {
		return fmt.Errorf("curves: %s: %w", name, err)
	}
	l.Color = plotutil.Color(i)
	l.Dashes = plotutil.Dashes(i / len(plotutil.DefaultColors))
	p.Add(l)
	if !points {
		p.Legend.Add(name, l)
		return nil
	}
	s, err := plotter.NewScatter(xys)
	if err != nil {
		return fmt.Errorf("curves: %s: %w", name, err)
	}
	s.Color, s.Shape = l.Color, plotutil.Shape(i)
	p.Add(s)
	p.Legend.Add(name, l, s)
	return nil
}

// preciseTicks are plot.DefaultTicks labelled with as many decimals as their spacing needs, so that a loss
// between 12.21 and 12.30 is not labelled "12" at every tick.
type preciseTicks struct{}

// Ticks returns the default ticks of [min, max], relabelled.
func (preciseTicks) Ticks(min, max float64) []plot.Tick {
	ts := plot.DefaultTicks{}.Ticks(min, max)
	var major []float64
	for _, t := range ts {
		if t.Label != "" {
			major = append(major, t.Value)
		}
	}
	decimals := 0
	if len(major) > 1 {
		decimals = int(math.Max(0, math.Ceil(-math.Log10(major[1]-major[0]))))
	}
	for i := range ts {
		if ts[i].Label != "" {
			ts[i].Label = strconv.FormatFloat(ts[i].Value, 'f', decimals, 64)
		}
	}
	return ts
}
