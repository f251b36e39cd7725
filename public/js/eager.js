/*
 * convlens report: lazy-loaded images for print and full-page captures. Pages with long image
 * lists (every class, the misclassified dataset images) load them lazily, and a lazy image
 * outside the viewport stays empty when the page is printed or captured whole. Once the page
 * has loaded (the images in view first), and before printing, every lazy image is switched to
 * eager, so the rest load too. Without JavaScript they stay lazy and load as the reader scrolls.
 * Classic script (no modules): it also runs when the report is opened from disk.
 */
(function () {
  'use strict';

  function eager() {
    var imgs = document.querySelectorAll('img[loading="lazy"]');
    for (var i = 0; i < imgs.length; i++) imgs[i].loading = 'eager';
  }

  window.addEventListener('beforeprint', eager);
  if (window.matchMedia) {
    var print = window.matchMedia('print');
    var onChange = function (ev) {
      if (ev.matches) eager();
    };
    if (print.addEventListener) print.addEventListener('change', onChange);
    else if (print.addListener) print.addListener(onChange);
  }
  if (document.readyState === 'complete') eager();
  else window.addEventListener('load', eager);
})();
