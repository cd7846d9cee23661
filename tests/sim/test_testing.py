from __future__ import annotations

import geopandas as gpd
import shapely

from tuban.testing import compliance_confusion, confusion_accuracy, match_patches, score_patches


def test_perfect_prediction_scores_one(tiny_scene):
    truth = tiny_scene.active_truth()
    s = score_patches(truth, truth, grid=tiny_scene)
    assert s.pixel_f1 == 1.0
    assert s.object_f1 == 1.0
    t = compliance_confusion(tiny_scene.truth, tiny_scene.truth)
    assert confusion_accuracy(t) == 1.0


def test_missed_and_false_patches(tiny_scene):
    truth = tiny_scene.active_truth().reset_index(drop=True)
    far = shapely.affinity.translate(truth.geometry.iloc[0], 0, 30000)
    pred = gpd.GeoDataFrame({"BYD": ["合规", "合规"]}, geometry=[truth.geometry.iloc[1], far], crs=truth.crs)
    s = score_patches(pred, truth)
    assert s.n_found == 1
    assert s.n_correct == 1
    assert s.n_pred == 2
    assert 0 < s.pixel_recall < 1
    assert 0 < s.pixel_precision < 1
    m = match_patches(pred, truth)
    assert (m["pred"] >= 0).sum() == 1
    table = compliance_confusion(pred, truth)
    assert table.loc["(false)"].sum() == 1
    assert table["(missed)"].sum() == len(truth) - 1


def test_scores_reproject_predictions(tiny_scene):
    truth = tiny_scene.active_truth()
    s = score_patches(truth.to_crs("EPSG:4490"), truth)
    assert s.object_recall == 1.0
    assert s.pixel_iou > 0.99
