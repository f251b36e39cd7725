/**
 * The colour maps heatmaps are drawn with, as polynomial fits, with no dependencies: the pipeline
 * colours maps with them (render.ts) and the site draws the legend of the same map from them.
 */

export const COLORMAPS = ['turbo', 'viridis', 'gray'] as const;
export type Colormap = (typeof COLORMAPS)[number];

/* Polynomial fits of the colour maps (x in [0,1] -> r,g,b in [0,1]). */
const POLY: Record<Exclude<Colormap, 'gray'>, number[][]> = {
  turbo: [
    [0.13572138, 4.6153926, -42.66032258, 132.13108234, -152.94239396, 59.28637943],
    [0.09140261, 2.19418839, 4.84296658, -14.18503333, 4.27729857, 2.82956604],
    [0.1066733, 12.64194608, -60.58204836, 110.36276771, -89.90310912, 27.34824973],
  ],
  viridis: [
    [0.2777273272234177, 0.1050930431085774, -0.3308618287255563, -4.634230498983486, 6.228269936347081, 4.776384997670288, -5.435455855934631],
    [0.005407344544966578, 1.404613529898575, 0.214847559468213, -5.799100973351585, 14.17993336680509, -13.74514537774601, 4.645852612178535],
    [0.3340998053353061, 1.384590162594685, 0.09509516302823659, -19.33244095627987, 56.69055260068105, -65.35303263337234, 26.3124352495832],
  ],
};

export function colormapRgb(x: number, cmap: Colormap): [number, number, number] {
  const t = Math.min(1, Math.max(0, Number.isFinite(x) ? x : 0));
  if (cmap === 'gray') {
    const g = Math.round(t * 255);
    return [g, g, g];
  }
  return POLY[cmap].map((c) => {
    let v = 0;
    for (let k = c.length - 1; k >= 0; k--) v = v * t + c[k];
    return Math.round(Math.min(1, Math.max(0, v)) * 255);
  }) as [number, number, number];
}

/** Whether a manifest's `render.colormap` names a colour map this version can draw. */
export function isColormap(name: string): name is Colormap {
  return (COLORMAPS as readonly string[]).includes(name);
}
