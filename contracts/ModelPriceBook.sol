// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {IModelPriceBook} from "./interfaces/IModelPriceBook.sol";
import {BmeMath} from "./libraries/BmeMath.sol";

/// @title ModelPriceBook
/// @notice The governed price book, mixed into the job escrow so that opening and settling a job read a price with
/// no external call.
abstract contract ModelPriceBook is IModelPriceBook, AccessControl {
    /// @notice Governance: the timelock.
    bytes32 public constant GOVERNOR_ROLE = keccak256("GOVERNOR_ROLE");

    /// @dev One slot per model.
    struct Model {
        uint64 inputPricePerMillion;
        uint64 outputPricePerMillion;
        bool listed;
    }

    mapping(uint16 modelId => Model) private _models;

    /// @inheritdoc IModelPriceBook
    function setModelPrice(uint16 modelId, string calldata name, uint64 inputPricePerMillion, uint64 outputPricePerMillion)
        external
        onlyRole(GOVERNOR_ROLE)
    {
        if (bytes(name).length == 0 || (inputPricePerMillion == 0 && outputPricePerMillion == 0)) {
            revert ModelPriceBookInvalidListing(modelId);
        }
        _models[modelId] = Model(inputPricePerMillion, outputPricePerMillion, true);
        emit ModelPriced(modelId, name, inputPricePerMillion, outputPricePerMillion);
    }

    /// @inheritdoc IModelPriceBook
    function delistModel(uint16 modelId) external onlyRole(GOVERNOR_ROLE) {
        Model storage m = _models[modelId];
        if (!m.listed) revert ModelPriceBookUnknownModel(modelId);
        m.listed = false;
        emit ModelDelisted(modelId);
    }

    /// @inheritdoc IModelPriceBook
    function modelPrice(uint16 modelId) external view returns (uint64, uint64, bool) {
        Model memory m = _models[modelId];
        return (m.inputPricePerMillion, m.outputPricePerMillion, m.listed);
    }

    /// @inheritdoc IModelPriceBook
    function costOf(uint16 modelId, uint256 inputTokens, uint256 outputTokens) public view returns (uint256) {
        Model memory m = _models[modelId];
        if (m.inputPricePerMillion == 0 && m.outputPricePerMillion == 0) revert ModelPriceBookUnknownModel(modelId);
        return BmeMath.jobCostUp(inputTokens, outputTokens, m.inputPricePerMillion, m.outputPricePerMillion);
    }

    /// @dev Whether new jobs may be opened for `modelId`.
    function _isListed(uint16 modelId) internal view returns (bool) {
        return _models[modelId].listed;
    }
}
