package laneway

import "github.com/laneway/laneway/internal/lanes"

// topology is the domain's streams and subscriptions under the app's lane
// configuration.
func (a *App) topology() lanes.Topology {
	d := a.dom
	spec := lanes.Spec{Domain: d.name, Categories: d.AllCategories(), CommandCategories: d.CommandCategories()}
	for _, h := range d.handlers {
		spec.Readers = append(spec.Readers, lanes.Reader{Group: h.name, Categories: d.Categories(h)})
	}
	return lanes.New(spec, lanes.FromConfig(a.cfg.Server.PriorityLanes))
}

// naming names the streams of the app's domain.
func (a *App) naming() lanes.Naming {
	return lanes.FromConfig(a.cfg.Server.PriorityLanes).Naming
}
